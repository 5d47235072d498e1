"""`python app.py` as a newcomer runs it: only the variables given, output (stdout and stderr) to a file."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.server_thread import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AppProcess:
    proc: subprocess.Popen
    url: str
    output: Path

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait_up(self, timeout: float = 30) -> "AppProcess":
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited early:\n{self.text()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=timeout, message="service start")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_app(tmp_path: Path, port: int | None = None, **env: str) -> AppProcess:
    """Start it (not waiting for anything); no inherited upper-case variable, so ROUTER_API_URL is unset
    unless given. Ollama points at a closed port unless OLLAMA_PORT is given: no LLM running."""
    port = port or free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")},
        "MODULE_PORT": str(port), "MODULE_HOST": "127.0.0.1", "OLLAMA_HOST": "127.0.0.1",
        "OLLAMA_PORT": str(free_port()), "SHUTDOWN_GRACE_S": "5", **env,
    }
    output = tmp_path / f"app-{port}.out"
    with output.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment, stdout=sink,
                                stderr=subprocess.STDOUT)
    return AppProcess(proc, f"http://127.0.0.1:{port}", output)
