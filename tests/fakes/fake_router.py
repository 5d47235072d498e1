"""A loopback fake of the router's reply endpoint, `POST /api/v1/router/responses` (§6).

Raw ASGI, served by tests/server_thread.py::ServerThread on its own thread and event loop.

Records:
- `attempts`: every request that reached the server, failed or not, in arrival order; each a dict
  with `time` (time.monotonic() at arrival), `method`, `path`, `headers` (lower-cased),
  `body` (parsed JSON, or None), `raw` (bytes), `client` ((host, port) of the caller's connection),
  and `status` (what was answered; None while pending or when the caller went away).
- `replies`: every request answered 2xx, i.e. delivered: dicts with `headers`, `body`, `time`.
  Nothing is deduplicated: a reply posted twice is recorded twice.

Controls (plain attributes, settable at any time from any thread):
- `fail_status`: answer failures with this status; alone (with `fail_times` None) every request fails.
- `fail_times`: fail the next N requests (with `fail_status`, default 500), then succeed.
- `fail_if`: a predicate on the attempt dict; the requests it is true for are answered 503 (with
  `retry_after` if set), the others as the controls below say.
- `retry_after`: value of a `Retry-After` header sent on failures (str or number).
- `delay`: seconds to wait before answering.
- `hang`: while true, requests are not answered (released when cleared, the caller disconnects,
  or the fake stops). A caller that disconnects while waiting gets nothing recorded as a reply.
- `hang_if`: a predicate on the attempt dict; the requests it is true for hang like `hang` (only
  those: the others are answered meanwhile). Cleared (None) or false again: released.
- `down`: connection failures. Setting `down = True` stops the server so that connections are
  refused; `down = False` starts it again on the same port. Both block up to ~1 s (from an async
  test, prefer `await asyncio.to_thread(setattr, fake, "down", True)`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Callable

from tests.fakes.asgi import is_http, read_body
from tests.server_thread import ServerThread, free_port


class FakeRouter:
    PREFIX = "/api/v1/router"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.fail_status: int | None = None
        self.fail_times: int | None = None
        self.fail_if: Callable[[dict[str, Any]], bool] | None = None
        self.retry_after: str | float | None = None
        self.delay: float = 0.0
        self.hang: bool = False
        self.hang_if: Callable[[dict[str, Any]], bool] | None = None
        self.attempts: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self._released = False

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What ROUTER_API_URL should be set to."""
        return self.url + self.PREFIX

    def start(self) -> "FakeRouter":
        self._released = False
        self._server = ServerThread(self, port=self.port, graceful_timeout=0.5).start()
        return self

    def stop(self) -> None:
        self._released = True
        server, self._server = self._server, None
        if server:
            server.stop()

    @property
    def down(self) -> bool:
        return self._server is None

    @down.setter
    def down(self, value: bool) -> None:
        if value and self._server:
            self.stop()
        elif not value and not self._server:
            self.start()

    def reset(self) -> None:
        """Clear controls and records."""
        self.fail_status = self.fail_times = self.retry_after = self.fail_if = None
        self.delay, self.hang, self.hang_if = 0.0, False, None
        with self._lock:
            self.attempts.clear()
            self.replies.clear()

    # --- inspection -----------------------------------------------------------------------
    def replies_for(self, interaction_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.replies
                    if (r["body"] or {}).get("interaction_id") == interaction_id
                    or r["headers"].get("idempotency-key") == interaction_id]

    def wait_for_replies(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block this thread until at least n replies arrived (deadline `timeout`); returns them all.

        Use `await_replies` when the poster runs on the calling thread's event loop."""
        deadline = time.monotonic() + timeout
        while len(self.replies) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {n} replies, got {len(self.replies)}")
            time.sleep(0.01)
        with self._lock:
            return list(self.replies)

    async def await_replies(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.replies) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {n} replies, got {len(self.replies)}")
            await asyncio.sleep(0.01)
        with self._lock:
            return list(self.replies)

    # --- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not await is_http(scope, receive, send):
            return
        raw = await read_body(receive)
        if raw is None:
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        attempt = {"time": time.monotonic(), "method": scope["method"], "path": scope["path"],
                   "headers": headers, "body": body, "raw": raw,
                   "client": tuple(scope["client"]) if scope.get("client") else None, "status": None}
        with self._lock:
            self.attempts.append(attempt)

        gone = asyncio.ensure_future(receive())  # completes with http.disconnect if the caller leaves
        try:
            until = time.monotonic() + self.delay
            while (self.hang or self._held(attempt) or time.monotonic() < until) and not self._released:
                if gone.done():
                    return
                await asyncio.sleep(0.005)
            if gone.done():
                return
            status, extra, answer = self._decide(attempt)
            data = json.dumps(answer).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(data)).encode()), *extra]})
            # Recorded before the body goes out, so a caller that saw the answer finds it recorded.
            attempt["status"] = status
            if 200 <= status < 300:
                with self._lock:
                    self.replies.append({"headers": headers, "body": body, "time": attempt["time"]})
            await send({"type": "http.response.body", "body": data})
        finally:
            gone.cancel()

    def _held(self, attempt: dict[str, Any]) -> bool:
        predicate = self.hang_if
        return bool(predicate is not None and predicate(attempt))

    def _decide(self, attempt: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], dict[str, Any]]:
        if attempt["path"] != self.PREFIX + "/responses":
            return 404, [], {"success": False, "error": {"code": "NOT_FOUND"}}
        if attempt["method"] != "POST":
            return 405, [], {"success": False, "error": {"code": "METHOD_NOT_ALLOWED"}}
        predicate = self.fail_if
        extra = [] if self.retry_after is None else [(b"retry-after", str(self.retry_after).encode())]
        failure = {"success": False, "error": {"code": "FAKE_FAILURE"}}
        if predicate is not None and predicate(attempt):
            return 503, extra, failure
        with self._lock:
            if self.fail_times is not None and self.fail_times > 0:
                self.fail_times -= 1
                failing = True
            else:
                failing = self.fail_times is None and self.fail_status is not None
        if failing:
            return self.fail_status or 500, extra, failure
        return 200, [], {"success": True}

