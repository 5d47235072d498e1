"""services/pipeline.py: interactions that are ready together start on separate event-loop turns
(services/loop_turns.py), so an ACK arriving meanwhile never waits behind all of them; a lone
interaction starts at once."""

from __future__ import annotations

import asyncio

from api.models import InteractionRequest
from services.community_config import MemoryConfigSource
from services.context_store import MemoryContextStore
from services.interaction import Interaction
from services.pipeline import Pipeline
from services.rate_limits import ReplyRateLimiter
from tests.support import interaction_body, make_settings

QUIET = "that clutch was insane"  # fires no trigger: the pipeline ends at the trigger check


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


def quiet_pipeline() -> Pipeline:
    s = make_settings()
    context = MemoryContextStore(s.context_history_limit, s.context_ttl_s, s.context_max_conversations)
    limiter = ReplyRateLimiter(s.user_cooldown_s, s.channel_max_replies_per_min)
    return Pipeline(s, MemoryConfigSource(s), context, limiter, llm=None, router=None)  # type: ignore[arg-type]


def quiet(i: int) -> Interaction:
    body = interaction_body(QUIET, message_id=f"m{i}", user_id=f"u{i}")
    return Interaction(InteractionRequest.model_validate(body), request_id=f"r{i}")


async def test_interactions_ready_together_start_on_separate_loop_turns_in_order():
    pipeline, turns = quiet_pipeline(), LoopTurns()
    finished: list[tuple[int, int]] = []

    async def process(i: int) -> None:
        assert await pipeline.process(quiet(i)) == ("ignored", "none")
        finished.append((i, turns.count))

    await asyncio.gather(*(process(i) for i in range(4)))
    turns.stop()
    assert [i for i, _ in finished] == [0, 1, 2, 3]
    seen = [turn for _, turn in finished]
    assert len(set(seen)) == 4 and seen == sorted(seen)  # one per turn, not all four in one


async def test_a_lone_interaction_starts_at_once():
    pipeline, turns = quiet_pipeline(), LoopTurns()
    before = turns.count
    assert await pipeline.process(quiet(0)) == ("ignored", "none")
    turns.stop()
    assert turns.count == before  # no loop turn passed: nothing else wanted one
