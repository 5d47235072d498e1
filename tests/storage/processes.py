"""Run real `python app.py` instances on a test schema (like tests/test_shutdown.py), output to a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from tests.server_thread import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Instance:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log
        self.http = httpx.Client(base_url=url, timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"instance exited early:\n{self.output()[-3000:]}")
        try:
            return self.http.get("/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def sigterm(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_instances(n: int, pg: Any, fake_ollama: Any, fake_router: Any, tmp_path: Path,
                    **env: str) -> list[Instance]:
    """Start n instances on the test schema and wait until every one is ready (store connected)."""
    parsed = urlparse(fake_ollama.url)
    instances = []
    for _ in range(n):
        port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")},
            "MODULE_PORT": str(port), "MODULE_HOST": "127.0.0.1", "DATABASE_URL": pg.dsn,
            "OLLAMA_HOST": parsed.hostname, "OLLAMA_PORT": str(parsed.port),
            "ROUTER_API_URL": fake_router.base_url, "USER_COOLDOWN_S": "0",
            "CHANNEL_MAX_REPLIES_PER_MIN": "100000", "QUEUE_POLL_S": "0.2", "HEALTH_CHECK_INTERVAL_S": "60",
            "SHUTDOWN_GRACE_S": "5", "WORKER_COUNT": "4", "LOG_LEVEL": "INFO", **env,
        }
        log = tmp_path / f"instance-{port}.log"
        with log.open("w") as sink:
            proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment,
                                    stdout=sink, stderr=subprocess.STDOUT)
        instances.append(Instance(proc, f"http://127.0.0.1:{port}", log))
    try:
        for instance in instances:
            wait_until(instance.ready, timeout=30, interval=0.05, message=f"{instance.url} ready")
    except BaseException:
        for instance in instances:
            instance.close()
        raise
    return instances
