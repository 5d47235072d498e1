"""`python app.py` as a newcomer runs it: only the variables given, output (stdout and stderr) to a file."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.server_thread import free_port
from tests.service_process import clean_environment, wait_healthy

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
        wait_healthy(self.proc, self.url, self.text, timeout)
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
        **clean_environment(),
        "MODULE_PORT": str(port), "MODULE_HOST": "127.0.0.1", "OLLAMA_HOST": "127.0.0.1",
        "OLLAMA_PORT": str(free_port()), "SHUTDOWN_GRACE_S": "5", **env,
    }
    output = tmp_path / f"app-{port}.out"
    with output.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment, stdout=sink,
                                stderr=subprocess.STDOUT)
    return AppProcess(proc, f"http://127.0.0.1:{port}", output)
