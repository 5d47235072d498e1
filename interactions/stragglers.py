"""Provider calls that outlived the deadline of the answer they were made for.

A command answered inline (POST /api/v1/execute) waits for the LLM only until EXECUTE_TIMEOUT_S;
then the viewer gets the canned fallback. Cancelling the call at that moment would hide a hanging
provider from its circuit breaker (a cancelled call counts as neither success nor failure), so the
call goes on, owned here, until the provider answers or REQUEST_TIMEOUT ends it: a timeout then
counts for the breaker, which opens, and the next commands fail over or fall back at once.

Bounded: at most `limit` calls are kept (MAX_CONCURRENT_REQUESTS: more could not be at a provider
at once anyway); beyond it a late call is cancelled. Failures are logged; `aclose()` cancels and
awaits what is left at shutdown.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

from llm.types import ProviderError
from observability.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")


class Stragglers:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._tasks: set[asyncio.Task[object]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, call: Awaitable[T], deadline: float) -> T:
        """`call`'s result if it ends before `deadline` (event loop time), else TimeoutError; a call
        still running then (or when the caller is cancelled) is adopted, not cancelled."""
        task = asyncio.ensure_future(call)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(task)
        finally:
            if not task.done():
                self._adopt(task)

    def _adopt(self, task: asyncio.Task[T]) -> None:
        if len(self._tasks) >= self.limit:
            task.cancel()
            return
        self._tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, ProviderError):
            log.warning("provider call failed after its answer's deadline", action="late_provider_call",
                        provider=exc.provider, result=exc.kind, error=str(exc)[:200])
        elif exc is not None:
            log.error("late provider call crashed", action="late_provider_call",
                      error_type=type(exc).__name__, exc_info=exc)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
