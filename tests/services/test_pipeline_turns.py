"""services/pipeline.py: triggered interactions that are ready together start their LLM work on
separate event-loop turns (services/loop_turns.py), so an ACK arriving meanwhile never waits behind
all of them; a lone one starts at once, and chat that fires no trigger never waits for a turn."""

from __future__ import annotations

import asyncio

import pytest

from api.models import InteractionRequest
from services.community_config import MemoryConfigSource
from services.context_store import MemoryContextStore
from services.interaction import Interaction
from services.pipeline import Pipeline
from services.rate_limits import ReplyRateLimiter
from tests.support import interaction_body, make_settings

QUIET = "that clutch was insane"  # fires no trigger: the pipeline ends at the trigger check
QUESTION = "what game is this?"  # fires "question": the pipeline goes on to the context and the LLM


class LoopTurns:
    """Counts event-loop turns: one callback that re-schedules itself once per turn."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


class Stop(Exception):
    pass


class FirstStepOfTheLLMWork(MemoryContextStore):
    """The real memory store, noting the turn at which each conversation's history is asked for
    (the first step of the LLM work), then stopping the interaction there."""

    def __init__(self, turns: LoopTurns, s) -> None:  # type: ignore[no-untyped-def]
        super().__init__(s.context_history_limit, s.context_ttl_s, s.context_max_conversations)
        self.turns = turns
        self.started: list[tuple[str, int]] = []

    async def history(self, key):  # type: ignore[no-untyped-def]
        self.started.append((key[2], self.turns.count))
        raise Stop


def pipeline(context: MemoryContextStore | None = None) -> Pipeline:
    s = make_settings()
    if context is None:  # (an empty store is falsy: it has a length)
        context = MemoryContextStore(s.context_history_limit, s.context_ttl_s, s.context_max_conversations)
    limiter = ReplyRateLimiter(s.user_cooldown_s, s.channel_max_replies_per_min)
    return Pipeline(s, MemoryConfigSource(s), context, limiter, llm=None, router=None)  # type: ignore[arg-type]


def interaction(i: int, text: str) -> Interaction:
    body = interaction_body(text, message_id=f"m{i}", user_id=f"u{i}")
    return Interaction(InteractionRequest.model_validate(body), request_id=f"r{i}")


async def test_triggered_interactions_ready_together_start_their_llm_work_on_separate_turns_in_order():
    turns = LoopTurns()
    context = FirstStepOfTheLLMWork(turns, make_settings())
    work = pipeline(context)
    results = await asyncio.gather(*(work.process(interaction(i, QUESTION)) for i in range(4)),
                                   return_exceptions=True)
    turns.stop()
    assert all(isinstance(r, Stop) for r in results), results
    assert [user for user, _ in context.started] == ["u0", "u1", "u2", "u3"]
    seen = [turn for _, turn in context.started]
    assert len(set(seen)) == 4 and seen == sorted(seen)  # one per turn, not all four in one


async def test_a_lone_triggered_interaction_starts_its_llm_work_at_once():
    turns = LoopTurns()
    context = FirstStepOfTheLLMWork(turns, make_settings())
    before = turns.count
    with pytest.raises(Stop):
        await pipeline(context).process(interaction(0, QUESTION))
    turns.stop()
    assert context.started == [("u0", before)]  # no loop turn passed: nothing else wanted one


async def test_chat_that_fires_nothing_never_waits_for_a_turn():
    turns, work = LoopTurns(), pipeline()
    finished: list[int] = []

    async def process(i: int) -> None:
        assert await work.process(interaction(i, QUIET)) == ("ignored", "none")
        finished.append(turns.count)

    await asyncio.gather(*(process(i) for i in range(4)))
    turns.stop()
    assert len(finished) == 4 and len(set(finished)) == 1  # all four in the turn they were ready in
