"""Late provider calls of inline answers (interactions/stragglers.py): waited for until a deadline,
then owned (not cancelled), bounded, and cancelled at shutdown."""

from __future__ import annotations

import asyncio

import pytest

from interactions.stragglers import Stragglers
from tests.waiting import async_wait_until


async def test_a_call_that_ends_in_time_is_its_result():
    stragglers = Stragglers(2)
    loop = asyncio.get_running_loop()
    assert await stragglers.wait(asyncio.sleep(0, "done"), loop.time() + 5) == "done"
    assert len(stragglers) == 0


async def test_a_late_call_times_out_for_the_caller_but_runs_on():
    stragglers, release = Stragglers(2), asyncio.Event()
    finished = asyncio.Event()

    async def call() -> str:
        await release.wait()
        finished.set()
        return "late"

    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await stragglers.wait(call(), loop.time() + 0.01)
    assert len(stragglers) == 1
    release.set()
    await asyncio.wait_for(finished.wait(), 5)
    await async_wait_until(lambda: len(stragglers) == 0, 5, message="the late call let go")


async def test_beyond_the_limit_a_late_call_is_cancelled_and_aclose_cancels_the_rest():
    stragglers, never = Stragglers(1), asyncio.Event()
    cancelled = []

    async def call() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    loop = asyncio.get_running_loop()
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await stragglers.wait(call(), loop.time() + 0.01)
    assert len(stragglers) == 1
    await async_wait_until(lambda: len(cancelled) == 1, 5, message="the call beyond the limit cancelled")
    await stragglers.aclose()
    assert len(cancelled) == 2 and len(stragglers) == 0

