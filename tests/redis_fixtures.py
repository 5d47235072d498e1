"""Redis for tests (registered in tests/conftest.py).

- `redis_space`: the machine's server (127.0.0.1:6379, or AIM_TEST_REDIS_URL) with a key prefix of
  the test's own, so tests running at the same time never share a key; its keys are deleted after.
  `.ci/run` starts that server when it is not running; without it these tests are skipped (in CI:
  failed).
- `own_redis`: a `redis-server` of the test's own on a free port, without persistence, that the
  test stops and starts again (an outage) on the same port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import redis

from tests.server_thread import free_port
from tests.waiting import wait_until

BASE_URL = os.environ.get("AIM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):  # .ci/run starts Redis: in CI a missing server is a failure
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class RedisSpace:
    """A key prefix of one test on the shared server: give `url` and `prefix` to the app."""

    url: str
    prefix: str

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def keys(self, kind: str = "") -> list[str]:
        """This test's keys (of one kind: `rl`, `dd`, `ctx`, `api`), without the prefix."""
        with self.client() as client:
            found = client.scan_iter(match=f"{self.prefix}{kind}*", count=1000)
            return sorted(k.decode()[len(self.prefix):] for k in found)

    def clear(self) -> None:
        with self.client() as client:
            doomed = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            for start in range(0, len(doomed), 500):
                client.unlink(*doomed[start:start + 500])


@pytest.fixture(scope="session")
def redis_available() -> None:
    try:
        with redis.Redis.from_url(BASE_URL, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis not reachable at {BASE_URL}: {exc!r}")


@pytest.fixture
def redis_space(redis_available: None) -> Iterator[RedisSpace]:
    space = RedisSpace(BASE_URL, f"aimtest:{uuid.uuid4().hex[:12]}:")
    try:
        yield space
    finally:
        space.clear()


class RedisServer:
    """`redis-server --port N --save '' --appendonly no`, started and stopped by the test."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, timeout=10, interval=0.02, message=f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        """Redis goes away: the process ends (its data with it), connections are refused."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server not installed")
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
