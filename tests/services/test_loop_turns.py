"""services/loop_turns.py: upstream answers resume one per loop turn, in order."""

from __future__ import annotations

import asyncio

from services.loop_turns import Turns, turns_of


async def test_answers_resume_one_per_loop_turn_in_order_and_a_cancelled_waiter_passes_its_turn():
    loop = asyncio.get_running_loop()
    turns = Turns(loop)
    resumed: list[str] = []

    async def answer(name: str) -> None:
        await turns.take()
        resumed.append(name)

    tasks = {name: asyncio.create_task(answer(name)) for name in "abcd"}
    await asyncio.sleep(0)  # one turn: every task reached take(); only the first went on
    assert resumed == ["a"]
    tasks["c"].cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    assert resumed == ["a", "b", "d"]
    assert tasks["c"].cancelled()
    await asyncio.wait_for(turns.take(), 1)  # the chain ended: a lone taker goes on at once


async def test_one_turns_per_loop():
    loop = asyncio.get_running_loop()
    assert turns_of(loop) is turns_of(loop)
