"""A small HTTP server on its own thread, for the examples' stand-ins (the fake LLM, the replay
tool's router): the standard library's ThreadingHTTPServer, `start()` and `stop()`. Its handlers
reach the object that owns it as `self.server.owner`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        owner: Any

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self._server = self._Server((host, port), handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
