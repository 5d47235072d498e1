"""The service as a real process under one of the ASGI servers that must run it unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import httpx

from tests.server_thread import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SERVERS = {
    "hypercorn": lambda port: [sys.executable, "app.py"],
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "--factory", "app:create_app", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log"],
    "granian": lambda port: [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "app:create_app"],
}


def clean_environment() -> dict[str, str]:
    """This process's environment without its upper-case variables (a developer's settings), PATH,
    HOME and LANG kept: a started service gets only the variables a test gives it."""
    return {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")}


def wait_healthy(proc: subprocess.Popen, url: str, output: Callable[[], str], timeout: float = 30,
                 path: str = "/health", name: str = "service", interval: float = 0.01) -> None:
    """Wait until the process serving `url` answers 200 on `path`; fail with its `output` if it exits first."""
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{output()}")
        try:
            return httpx.get(f"{url}{path}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=timeout, interval=interval, message=f"{name} to answer {path}")


def start_service(server: str, fake_ollama, fake_router, **env: str) -> tuple[subprocess.Popen, str]:
    """Start the service on a free port and wait for /health; returns the process and its URL."""
    port = free_port()
    parsed = urlparse(fake_ollama.url)
    environment = {
        **clean_environment(),
        "MODULE_PORT": str(port), "MODULE_HOST": "127.0.0.1",
        "OLLAMA_HOST": parsed.hostname, "OLLAMA_PORT": str(parsed.port),
        "ROUTER_API_URL": fake_router.base_url, "USER_COOLDOWN_S": "0",
        "SHUTDOWN_GRACE_S": "20", "WORKER_COUNT": "2", "LOG_LEVEL": "INFO",
        **env,
    }
    proc = subprocess.Popen(SERVERS[server](port), cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    wait_healthy(proc, url, proc.stdout.read)
    return proc, url
