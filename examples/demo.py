"""`make demo`: the service judging a multilingual chat, with a fake LLM, in well under a minute.

Starts the fake LLM (examples/fake_llm.py) and the replay tool's loopback router on free ports,
then the service (`python app.py`) pointed at both, waits for `/ready`, replays examples/chat.jsonl
and prints each line's fate, then stops the service (SIGTERM) and everything else. The service's
own log goes to a temporary file, printed only when something goes wrong.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

from examples.fake_llm import FakeLLM
from examples.replay import DEFAULT_CHAT, Replayer, ReplyRouter, failed, read_chat, run

ROOT = Path(__file__).resolve().parents[1]
ROUTER_KEY = "demo-router-key"
ADMIN_KEY = "demo-admin-key"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(port: int, llm: FakeLLM, router: ReplyRouter) -> dict[str, str]:
    """The process environment: the fake LLM, our router, keys for the dry run, quiet logs.

    Every variable a `.env` could set to something that changes the demo is given here (the
    environment wins over `.env`), so the demo runs the same on any checkout.
    """
    return {
        **os.environ,
        "MODULE_HOST": "127.0.0.1", "MODULE_PORT": str(port), "LOG_LEVEL": "WARNING",
        "AI_PROVIDER": "ollama", "FALLBACK_PROVIDER": "", "OLLAMA_HOST": llm.host,
        "OLLAMA_PORT": str(llm.port), "OLLAMA_USE_TLS": "false", "OLLAMA_MODEL": "llama3.2",
        "ROUTER_API_URL": router.url, "ROUTER_PROTOCOL": "contract", "ROUTER_API_KEY": "",
        "ROUTER_SERVICE_KEY": ROUTER_KEY, "ADMIN_API_KEYS": ADMIN_KEY,
        "DATABASE_URL": "", "REDIS_URL": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
        # a chat replayed in a second: no per-user cooldown, room for every reply in the minute
        "USER_COOLDOWN_S": "0", "CHANNEL_MAX_REPLIES_PER_MIN": "1000", "SHUTDOWN_GRACE_S": "5",
    }


def wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with status {proc.returncode}")
            try:
                if client.get(f"{url}/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling interval of the readiness probe, not a wait for work
    raise RuntimeError(f"the service was not ready within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def show_log(log: IO[str]) -> None:
    log.seek(0)
    tail = log.read()[-4000:]
    print(f"--- the service's log (last part) ---\n{tail}", file=sys.stderr)


def main() -> int:
    lines = read_chat(DEFAULT_CHAT)
    llm, router = FakeLLM().start(), ReplyRouter().start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"fake LLM on {llm.url}, replies to {router.url}, starting the service on {url} …", flush=True)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=service_env(port, llm, router),
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_ready(proc, url, READY_TIMEOUT_S)
            replayer = Replayer(url, ROUTER_KEY, ADMIN_KEY, wait=15.0)
            try:
                results = run(replayer, lines, dry_run=False, router=router)
            finally:
                replayer.client.close()
            print(f"the fake LLM answered {llm.calls} calls; stopping …", flush=True)
            code = 1 if failed(results) else 0
        except (RuntimeError, httpx.HTTPError) as error:
            print(f"demo failed: {error}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            code = 130
        finally:
            stop(proc)
            llm.stop()
            router.stop()
        if code == 1:
            show_log(log)
    return code


if __name__ == "__main__":
    sys.exit(main())
