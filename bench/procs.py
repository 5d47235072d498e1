"""The processes of a run — the service (one per code version), the bare Quart app, the fakes — each
started here, remembered, and stopped by its own pid. CPU time and RSS are read from /proc/<pid>."""

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
SERVERS = ("hypercorn", "uvicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: Any) -> dict[str, str]:
    """The parent's environment without configuration variables (upper-case names), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in KEEP_ENV}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    """A blocking control call: (status, parsed JSON or text, headers with lower-case names)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, hdrs = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, exc.headers
    lower = {k.lower(): v for k, v in (hdrs or {}).items()}
    try:
        return status, json.loads(raw), lower
    except ValueError:
        return status, raw.decode(errors="replace"), lower


class StartError(RuntimeError):
    pass


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int, log: Path) -> None:
        self.name, self.port, self.url, self.log_path = name, port, f"http://127.0.0.1:{port}", log
        self._log = open(log, "wb")
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            try:
                if http("GET", self.url + path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        why = f"exit {self.popen.returncode}" if self.popen.poll() is not None else f"not ready in {timeout:g} s"
        raise StartError(f"{why}: {lines[-1].strip()[:160] if lines else 'no output'}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        with open(f"/proc/{self.popen.pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        with open(f"/proc/{self.popen.pid}/status") as fh:
            line = next(line for line in fh if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def pending(self) -> int:
        """queue_depth + inflight from the service's /api/v1/ai/status."""
        code, body, _ = http("GET", self.url + "/api/v1/ai/status", timeout=5)
        if code != 200:
            raise RuntimeError(f"{self.name}: /api/v1/ai/status answered {code}")
        return int(body["data"]["queue_depth"]) + int(body["data"]["inflight"])


class Procs:
    """Starts processes on free ports; the service and the bare app under `server`."""

    def __init__(self, workdir: Path, server: str) -> None:
        self.workdir, self.server = workdir, server
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int, ready: str,
              timeout: float = 30.0) -> Proc:
        proc = Proc(name, argv, env, cwd, port, self.workdir / f"{name}.log")
        self.procs.append(proc)
        try:
            proc.wait_ready(ready, timeout)
        except StartError:
            self.stop(proc)
            raise
        return proc

    def fake(self, kind: str) -> Proc:
        port = free_port()
        return self.start(f"fake-{kind}", [PYTHON, "-m", "bench.fakes", kind, str(port)],
                          clean_env(PYTHONPATH=ROOT), ROOT, port, "/__bench/stats")

    def bare(self, name: str = "bare") -> Proc:
        port = free_port()
        argv = ([PYTHON, "-m", "uvicorn", "bench.baseline_app:app", *self._uvicorn(port)] if self.server == "uvicorn"
                else [PYTHON, "-m", "bench.baseline_app", str(port)])
        return self.start(name, argv, clean_env(PYTHONPATH=ROOT), ROOT, port, "/health")

    def service(self, name: str, app_dir: Path, env: dict[str, Any]) -> Proc:
        """The service of `app_dir`, run from an empty directory (no stray `.env`)."""
        port = free_port()
        cwd = self.workdir / name
        cwd.mkdir(exist_ok=True)
        argv = [PYTHON, str(app_dir / "app.py")]
        if self.server == "uvicorn":
            argv = [PYTHON, "-m", "uvicorn", "--factory", "app:create_app", "--app-dir", str(app_dir),
                    *self._uvicorn(port)]
        return self.start(name, argv, clean_env(MODULE_HOST="127.0.0.1", MODULE_PORT=port, **env), cwd, port, "/health")

    @staticmethod
    def _uvicorn(port: int) -> list[str]:
        return ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]

    def stop(self, *procs: Proc) -> None:
        for proc in procs:
            proc.stop()
            if proc in self.procs:
                self.procs.remove(proc)

    def close(self) -> None:
        self.stop(*reversed(self.procs))


@contextmanager
def checkout(rev: str, where: Path) -> Iterator[Path]:
    """A detached `git worktree` of `rev` at `where`, removed afterwards."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), rev], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False)


def short_rev(rev: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True)
    return out.stdout.strip() or rev
