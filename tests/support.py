"""Build settings for tests and run the real app on loopback against the fakes."""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any, Iterator
from urllib.parse import urlparse

import httpx
import pytest

from app import create_app
from pydantic_settings import SettingsConfigDict

from config.settings import Settings
from tests.server_thread import ServerThread

TEST_DEFAULTS: dict[str, Any] = {
    "user_cooldown_s": 0,
    "channel_max_replies_per_min": 10_000,
    "router_retry_max_s": 2,
    "request_timeout": 2,
    "breaker_reset_s": 30,
    "health_check_interval_s": 60,
    "shutdown_grace_s": 5,
    "log_level": "WARNING",
}


class IsolatedSettings(Settings):
    """Settings from arguments and the environment only: a developer's .env never leaks into a test."""

    model_config = SettingsConfigDict(env_file=None)


def make_settings(ollama: Any = None, router: Any = None, openai: Any = None, **overrides: Any) -> Settings:
    values = dict(TEST_DEFAULTS)
    if ollama is not None:
        parsed = urlparse(ollama.url)
        values.update(ollama_host=parsed.hostname, ollama_port=parsed.port)
    if openai is not None:
        values.update(waddleai_base_url=openai.url, waddleai_api_key="test-waddle-key")
    if router is not None:
        values["router_api_url"] = router.base_url
    values.update(overrides)
    return IsolatedSettings(**values)


@contextlib.contextmanager
def running_app(settings: Settings, **app_options: Any) -> Iterator["AppHandle"]:
    """`app_options` go to create_app (e.g. `tracer_provider=`, tests/observability/test_tracing.py)."""
    app = create_app(settings, **app_options)
    server = ServerThread(app, graceful_timeout=settings.shutdown_grace_s).start()
    handle = AppHandle(app, server)
    try:
        yield handle
    finally:
        handle.http.close()
        server.stop()


def settled(app: "AppHandle") -> bool:
    """Everything accepted is done: nothing queued, no worker busy, no reply waiting in the outbox."""
    rt = app.runtime
    return rt.queue.depth() == 0 and rt.workers.inflight == 0 and rt.outbox.depth() == 0


class AppHandle:
    def __init__(self, app: Any, server: ServerThread) -> None:
        self.app = app
        self.server = server
        self.url = server.url
        # Idle connections are dropped after 2 s, before Hypercorn closes them (keep_alive_timeout 5 s):
        # reusing one just as the server's close arrives fails with "Server disconnected without
        # sending a response" — the likely cause of a one-off CI failure of a hardening test.
        self.http = httpx.Client(base_url=server.url, timeout=10, limits=httpx.Limits(keepalive_expiry=2.0))

    @property
    def runtime(self) -> Any:
        return self.app.extensions["runtime"]

    def post_interaction(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.http.post("/api/v1/ai/interaction", json=body, **kwargs)


_counter = 0


def interaction_body(message: str = "hello there", **overrides: Any) -> dict[str, Any]:
    """A realistic router body with a unique message id."""
    global _counter
    _counter += 1
    body = {
        "session_id": f"sess-{_counter}",
        "user_id": "user-42",
        "entity_id": "twitch:channel:789",
        "platform": "twitch",
        "username": "viewer42",
        "display_name": "Viewer42",
        "message_type": "chatMessage",
        "message_content": message,
        "message_id": f"msg-{_counter}-{id(overrides)}",
        "channel_id": "789",
        "execution_id": f"exec-{_counter}",
        "metadata": {"source": "test"},
    }
    body.update(overrides)
    return body


def docker_env_file(text: str) -> dict[str, str]:
    """Docker's env-file rules (`docker run --env-file`, compose `env_file`): leading whitespace
    dropped, `#` lines and blank lines skipped, the value everything after the first `=`, kept as is
    (quotes, `#`, trailing spaces included)."""
    values = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"a line without '=' takes its value from the host environment: {raw!r}"
        values[key] = value
    return values


def prometheus_tool(name: str) -> str:
    """The path of Debian's `prometheus` package tool `name` (promtool, prometheus). Missing, the test
    is skipped on a developer's machine, and fails where REQUIRE_PROMTOOL is set (.ci/run sets it and
    installs the package first), so CI never passes by skipping."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("REQUIRE_PROMTOOL"):
            pytest.fail(f"{name} not found (apt-get install prometheus)")
        pytest.skip(f"{name} not installed (apt-get install prometheus); .ci/run installs it")
    return path
