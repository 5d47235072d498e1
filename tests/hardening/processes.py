"""Real `python app.py` processes and a traffic generator, for the process-fault tests and the soak."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import httpx

from tests.server_thread import free_port
from tests.storage.processes import Instance
from tests.support import interaction_body
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def launch(tmp_path: Path, fake_ollama: Any, fake_router: Any, *, name: str = "service",
           port: int | None = None, **env: str) -> Instance:
    """Start `python app.py` on loopback (output to a file) and wait for /health."""
    port = port or free_port()
    parsed = urlparse(fake_ollama.url)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")},
        "MODULE_PORT": str(port), "MODULE_HOST": "127.0.0.1",
        "OLLAMA_HOST": parsed.hostname, "OLLAMA_PORT": str(parsed.port),
        "ROUTER_API_URL": fake_router.base_url, "USER_COOLDOWN_S": "0",
        "CHANNEL_MAX_REPLIES_PER_MIN": "100000", "HEALTH_CHECK_INTERVAL_S": "60",
        "SHUTDOWN_GRACE_S": "20", "WORKER_COUNT": "4", "LOG_LEVEL": "INFO", **env,
    }
    log = tmp_path / f"{name}-{port}.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment,
                                stdout=sink, stderr=subprocess.STDOUT)
    instance = Instance(proc, f"http://127.0.0.1:{port}", log)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{instance.output()[-3000:]}")
        try:
            return instance.http.get("/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=30, interval=0.05, message=f"{name} up")
    except BaseException:
        instance.close()
        raise
    return instance


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@dataclass
class Traffic:
    """Threads posting interactions to one or more service URLs until stopped.

    `make_body(n)` builds the n-th body; every 202 is recorded (interaction id, and whether it was
    a duplicate), every other answer counted by status, transport errors by name. A thread that
    sees `stop_on` statuses (e.g. 503 while draining) or a refused connection stops by itself when
    `stop_when_refused` is set. Bodies whose post got no answer at all are kept in `unanswered`:
    the service may have accepted them, so a router would post them again (`retry_unanswered`)."""

    urls: list[str]
    make_body: Callable[[int], dict[str, Any]]
    threads: int = 4
    stop_when_refused: bool = False
    retry_refused: bool = False  # 429/503: post the same body again after Retry-After, as a router would
    pause_s: float = 0.0
    rate: float = 0.0  # posts per second over all threads, paced (each thread keeps its own schedule)
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    unanswered: list[dict[str, Any]] = field(default_factory=list)  # bodies whose post got no answer

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = 0
        self._workers: list[threading.Thread] = []

    def start(self) -> "Traffic":
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), name=f"traffic-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def join(self, timeout: float = 30) -> bool:
        """Wait for the threads to end by themselves (`stop_when_refused`); True when they all did."""
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._workers)

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout)

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self.acked) + self.duplicates

    def retry_unanswered(self, url: str) -> list[str]:
        """Post every unanswered body again, as the router would; returns the interaction ids."""
        ids = []
        with httpx.Client(timeout=10) as client:
            for body in self.unanswered:
                response = client.post(url + "/api/v1/ai/interaction", json=body, headers=self.headers)
                assert response.status_code == 202, response.text
                ids.append(response.json()["data"]["interaction_id"])
        return ids

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            retry: tuple[str, dict[str, Any]] | None = None
            started, sent = time.monotonic(), 0
            while not self._stop.is_set():
                if self.rate:  # the next slot of this thread's schedule: a steady rate, not a burst
                    sent += 1
                    self._stop.wait(max(0.0, started + sent * self.threads / self.rate - time.monotonic()))
                n = self._next()
                url = self.urls[n % len(self.urls)]
                body = self.make_body(n)
                if retry is not None:
                    url, body = retry
                    retry = None
                try:
                    response = client.post(url + "/api/v1/ai/interaction", json=body, headers=self.headers)
                except httpx.TransportError as exc:
                    with self._lock:
                        self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                        self.unanswered.append(body)  # maybe accepted: a router would post it again
                    if self.stop_when_refused:
                        return
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                    if response.status_code == 202:
                        data = response.json()["data"]
                        if data["duplicate"]:
                            self.duplicates += 1
                        else:
                            self.acked[data["interaction_id"]] = body
                if response.status_code == 503 and self.stop_when_refused:
                    return
                if response.status_code in (429, 503) and self.retry_refused:
                    retry = (url, body)
                    wait = float(response.headers.get("retry-after", "1") or 1)
                    self._stop.wait(min(wait, 2.0))
                    continue
                if self.pause_s:
                    self._stop.wait(self.pause_s)


def greeting(n: int, channels: int = 20) -> dict[str, Any]:
    """A greeting from a distinct user, spread over `channels` channels."""
    return interaction_body("hello there", user_id=f"load-user-{n}", entity_id=f"twitch:channel:{n % channels}",
                            message_id=f"load-{n}-{time.monotonic_ns()}")
