"""The peer gateways users would pick instead, each proxying the bench's fake OpenAI upstream on
loopback, started and stopped by the bench like every other process:

- LiteLLM proxy, `litellm[proxy]` pinned in requirements-integration.txt, from its own venv
  (`make litellm-venv` builds `.venv-litellm`; `LITELLM_BIN` names another `litellm`), one worker,
  a config whose one model points at the fake (`api_base`), a master key of the run;
- Portkey's gateway, `@portkey-ai/gateway` pinned below, installed with npm into `.bench-node/`
  on first use, `node build/start-server.js --port=N --headless`, called with
  `x-portkey-provider: openai` and `x-portkey-custom-host: <fake>/v1`.

A peer that cannot be installed or started gives a side with `why` set ("unavailable: …"); its row
says so, the other sides still run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import ROOT, Proc, Procs, StartError, clean_env, free_port

LITELLM_VERSION = "1.108.7"  # as requirements-integration.txt pins litellm[proxy]
PORTKEY_PACKAGE = "@portkey-ai/gateway@1.15.2"
NODE_DIR = ROOT / ".bench-node"
PORTKEY_SCRIPT = NODE_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


@dataclass
class Side:
    label: str
    proc: Proc | None = None
    headers: dict[str, str] = field(default_factory=dict)
    why: str = ""  # set when the side is unavailable


def litellm(procs: Procs, upstream: str, model: str) -> Side:
    label = f"LiteLLM proxy {LITELLM_VERSION} (1 worker)"
    binary = Path(os.environ.get("LITELLM_BIN") or ROOT / ".venv-litellm" / "bin" / "litellm")
    if not binary.exists():
        return Side(label, why=f"unavailable: no {binary} (`make litellm-venv`, or set LITELLM_BIN)")
    key = "sk-bench-" + secrets.token_hex(24)
    config = procs.workdir / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}/v1
      api_key: bench-upstream-key
""")
    port = free_port()
    env = clean_env(LITELLM_MASTER_KEY=key, LITELLM_LOCAL_MODEL_COST_MAP="True")
    try:
        proc = procs.start("litellm", [str(binary), "--config", str(config), "--host", "127.0.0.1",
                                       "--port", str(port), "--num_workers", "1"],
                           env, procs.workdir, port, "/health/liveliness", timeout=90)
    except (StartError, OSError) as exc:
        return Side(label, why=f"unavailable: could not start ({exc})")
    return Side(label, proc, {"Authorization": f"Bearer {key}"})


def install_portkey() -> str:
    """Installs the pinned gateway into .bench-node/ when it is not there: '' or why not."""
    if PORTKEY_SCRIPT.exists():
        return ""
    npm = shutil.which("npm")
    if not npm:
        return "npm is not installed"
    try:
        out = subprocess.run([npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", PORTKEY_PACKAGE],
                             capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return f"npm install {PORTKEY_PACKAGE} took over 300 s"
    if out.returncode or not PORTKEY_SCRIPT.exists():
        lines = (out.stderr or out.stdout).strip().splitlines()
        return f"npm install {PORTKEY_PACKAGE} failed: {lines[-1][:160] if lines else out.returncode}"
    return ""


def portkey(procs: Procs, upstream: str) -> Side:
    label = f"Portkey gateway {PORTKEY_PACKAGE.rpartition('@')[2]}"
    node = shutil.which("node")
    if not node:
        return Side(label, why="unavailable: node is not installed")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    label += f" (Node {version.lstrip('v')})"
    why = install_portkey()
    if why:
        return Side(label, why=f"unavailable: {why}")
    port = free_port()
    try:
        proc = procs.start("portkey", [node, str(PORTKEY_SCRIPT), f"--port={port}", "--headless"],
                           clean_env(), PORTKEY_SCRIPT.parents[1], port, "/", timeout=60)
    except (StartError, OSError) as exc:
        return Side(label, why=f"unavailable: could not start ({exc})")
    return Side(label, proc, {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{upstream}/v1",
                              "Authorization": "Bearer bench-upstream-key"})
