"""Processes of a benchmark run: the service (`python app.py`), the baseline app, the fakes.

Every process is started by the harness, remembered, and stopped by its own pid at the end.
CPU time and RSS are read from /proc/<pid>/stat and /proc/<pid>/status.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without configuration variables (upper-case ones), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in KEEP_ENV}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    """A tiny blocking HTTP client for control calls: (status, parsed JSON or text, headers)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, hdrs = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, dict(exc.headers or {})
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode(errors="replace"), hdrs


class StartError(RuntimeError):
    pass


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int,
                 log_path: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.pid = self.popen.pid

    # --- lifecycle -------------------------------------------------------------------------
    def wait_ready(self, path: str = "/health", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise StartError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if http("GET", self.url + path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StartError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 25.0) -> int | None:
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.popen.returncode

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            self._log.flush()
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- measurements ------------------------------------------------------------------------
    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak RSS) in MiB from /proc/<pid>/status."""
        out: dict[str, float] = {}
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
        return out

    # --- service helpers ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        code, body, _ = http("GET", self.url + "/api/v1/ai/status", timeout=5)
        if code != 200:
            raise RuntimeError(f"{self.name} /api/v1/ai/status answered {code}: {body!r}"[:300])
        return body["data"]

    def pending(self) -> int:
        data = self.status()
        return int(data.get("queue_depth", 0)) + int(data.get("inflight", 0))

    def outcomes(self) -> dict[str, float]:
        """ai_interactions_total by outcome, from /metrics (empty when the metric is absent)."""
        try:
            code, text, _ = http("GET", self.url + "/metrics", timeout=5)
        except OSError:
            return {}
        out: dict[str, float] = {}
        if code != 200 or not isinstance(text, str):
            return out
        for line in text.splitlines():
            if line.startswith("ai_interactions_total{") and 'outcome="' in line:
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                out[outcome] = out.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
        return out


class Fleet:
    """Starts and remembers processes; `close()` stops each by its pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def _start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int) -> Proc:
        proc = Proc(name, argv, env, cwd, port, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def fake(self, kind: str) -> Proc:
        port = free_port()
        return self._start(f"fake-{kind}", [PYTHON, "-m", "bench.fakes", kind, str(port)],
                           clean_env(PYTHONPATH=str(ROOT)), ROOT, port)

    def baseline(self, openai_upstream: str | None = None) -> Proc:
        """The bare app; with `openai_upstream`, the OpenAI floor proxy (its own process: the ACK and
        memory baseline never import the SDK)."""
        port = free_port()
        name, extra = ("openai-floor", [openai_upstream]) if openai_upstream else ("baseline", [])
        return self._start(name, [PYTHON, "-m", "bench.baseline_app", str(port), *extra],
                           clean_env(PYTHONPATH=str(ROOT)), ROOT, port)

    def proxy_floor(self, kind: str, openai_upstream: str) -> Proc:
        """An OpenAI floor proxy without the SDK (bench/proxy_floors.py; kind: asgi or quart)."""
        port = free_port()
        return self._start(f"openai-floor-{kind}", [PYTHON, "-m", "bench.proxy_floors", str(port), openai_upstream, kind],
                           clean_env(PYTHONPATH=str(ROOT)), ROOT, port)

    def service(self, name: str, env: dict[str, str]) -> Proc:
        """`python app.py`, run from an empty directory so no stray `.env` is read."""
        port = free_port()
        cwd = self.workdir / name
        cwd.mkdir(exist_ok=True)
        full_env = clean_env(MODULE_HOST="127.0.0.1", MODULE_PORT=str(port), **env)
        return self._start(name, [PYTHON, str(ROOT / "app.py")], full_env, cwd, port)

    def stop(self, proc: Proc) -> int | None:
        code = proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)
        return code

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop(timeout=10)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        self.procs.clear()
