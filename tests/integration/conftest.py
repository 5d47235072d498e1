"""A REAL LiteLLM proxy on a loopback port, for the integration suite (`make test-integration`).

`make test` does not collect this folder (pytest.ini ignores it); `make test-integration` installs
requirements-integration.txt into .venv-litellm (its own venv: LiteLLM pins its own openai, httpx,
pydantic) and runs it. The proxy's models are LiteLLM `mock_response` models (no network), plus
`echo`, routed by LiteLLM to a loopback FakeOpenAI that records what reaches it (forwarded headers).
The config is written as JSON, which is YAML too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.llm_fixtures import run_fake
from tests.server_thread import free_port
from tests.service_process import wait_healthy

ROOT = Path(__file__).resolve().parents[2]
LITELLM = os.environ.get("LITELLM_BIN") or str(ROOT / ".venv-litellm" / "bin" / "litellm")
MASTER_KEY = "sk-integration-master-key"  # sent by the app only through WADDLEAI_EXTRA_HEADERS
READY_S = 90  # LiteLLM starts in about 6 s on two cores; this is only the deadline
STOP_S = 3

ANSWER = "Hello from LiteLLM, friend of the stream!"
STREAMED = "One two three four five six seven eight nine ten, streamed by LiteLLM."
MOCKS = {
    "mock-answer": {"mock_response": ANSWER},
    "mock-stream": {"mock_response": STREAMED},
    "mock-error": {"mock_response": "litellm.InternalServerError"},  # 500
    "mock-ratelimit": {"mock_response": "litellm.RateLimitError"},  # 429: this model's quota
    "mock-timeout": {"mock_response": "never", "mock_timeout": True, "timeout": 1},  # 408 after 1 s
    "mock-hang": {"mock_response": "too late", "mock_delay": 300},  # outlasts our REQUEST_TIMEOUT
}


@dataclass(frozen=True)
class LiteLLMProxy:
    url: str
    log: Path
    echo: FakeOpenAI  # the upstream behind the `echo` model

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def litellm_config(echo_url: str) -> dict:
    models = [{"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "unused", **params}}
              for name, params in MOCKS.items()]
    models.append({"model_name": "echo", "litellm_params": {
        "model": "openai/echo", "api_key": "upstream-key", "api_base": f"{echo_url}/v1"}})
    return {
        "model_list": models,
        "general_settings": {"master_key": MASTER_KEY, "forward_client_headers_to_llm_api": True},
        "litellm_settings": {"num_retries": 0, "telemetry": False},
    }


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.models = ["echo"]
    yield from run_fake(fake)


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory, echo_upstream) -> Iterator[LiteLLMProxy]:
    if not Path(LITELLM).exists():
        pytest.fail(f"LiteLLM is not installed at {LITELLM}: run `make test-integration`, which builds "
                    ".venv-litellm from requirements-integration.txt (or set LITELLM_BIN)")
    workdir = tmp_path_factory.mktemp("litellm")
    config = workdir / "litellm.yaml"
    config.write_text(json.dumps(litellm_config(echo_upstream.url), indent=1))
    port, log = free_port(), workdir / "litellm.log"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "NO_PROXY": "127.0.0.1,localhost",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    with log.open("w") as out:
        proc = subprocess.Popen([LITELLM, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: stopped as a whole
    proxy = LiteLLMProxy(f"http://127.0.0.1:{port}", log, echo_upstream)

    try:
        wait_healthy(proc, proxy.url, proxy.log_tail, READY_S, path="/health/liveliness", name="the LiteLLM proxy",
                     interval=0.2)
        yield proxy
    finally:  # SIGTERM, then SIGKILL: uvicorn's graceful stop would wait for mock-hang's sleeping request
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
