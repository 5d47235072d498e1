"""Background work goes on one piece per event-loop turn, in arrival order.

Ten LLM answers arriving together would otherwise each run their whole continuation (parse the
answer, build and send the router post: ~2 ms of CPU) in one loop turn, and an ACK arriving
meanwhile waits for all of them. With turns, an upstream answer that had to wait goes on at once
if no other did in this turn, else waits for its own turn, so the loop polls sockets (and serves
ACKs) between two answers. services/aiohttp_transport.py takes a turn when a response head arrives;
services/pipeline.py when a triggered interaction starts its LLM work and before it posts the reply.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque


class Turns:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._taken = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        if not self._taken:
            self._taken = True
            self._loop.call_soon(self._next)  # runs next turn, after this turn's callbacks
            return
        turn = self._loop.create_future()
        self._waiting.append(turn)
        await turn

    def _next(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a cancelled waiter gives its turn away
                turn.set_result(None)
                self._loop.call_soon(self._next)
                return
        self._taken = False


_turns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns]" = weakref.WeakKeyDictionary()


def turns_of(loop: asyncio.AbstractEventLoop) -> Turns:
    """The one Turns of this event loop."""
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = Turns(loop)
    return turns
