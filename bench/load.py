"""One measured load against one process: wrk where it serves (closed loop for a duration), else
bench/driver.py; each in its own process, both answering the same keys (ok, rps, non2xx, errors, p50,
p99 and ttft_p50 in ms). The target's CPU time is read from /proc around the run: `cpu_us` per 2xx."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from typing import Any

from bench import payloads
from bench.procs import PYTHON, ROOT, Proc, clean_env

LUA_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"us":%d,"requests":%d,"status":%d,"errors":%d,"p50":%d,"p99":%d}\n',
    summary.duration, summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def lua(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def lua_script(spec: dict[str, Any]) -> str:
    headers = {"Content-Type": "application/json", **(spec.get("headers") or {})}
    out = ['wrk.method = "POST"', f"wrk.path = {lua(spec['path'])}",
           "wrk.headers = {" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in headers.items()) + "}"]
    if spec["kind"] == "openai":
        out.append(f"wrk.body = {lua(payloads.openai_body(bool(spec.get('stream'))).decode())}")
    else:  # a unique body per request, as payloads.interaction_body builds it (quiet or trigger texts)
        if not isinstance(spec.get("trigger", False), bool):
            raise ValueError("wrk sends quiet or trigger texts only")
        texts = payloads.TRIGGER_TEXTS if spec.get("trigger") else payloads.QUIET_TEXTS
        args = ", ".join(payloads.INTERACTION_ARGS)
        out.append(f"""local run, tmpl = {lua(spec["run"])}, {lua(payloads.INTERACTION_TEMPLATE)}
local texts = {{{", ".join(map(lua, texts))}}}
local USERS, CHANNELS, n = {spec.get("users", 10_000)}, {spec.get("channels", 500)}, -1
function request()
  n = n + 1
  local u, c, text = n, math.floor(n / 10), texts[(n % #texts) + 1]
  if USERS > 0 then u = n % USERS end
  if CHANNELS > 0 then c = n % CHANNELS end
  return wrk.format(nil, nil, nil, string.format(tmpl, {args}))
end""")
    if spec.get("delay_ms"):
        out.append(f"function delay() return {spec['delay_ms']} end")
    return "\n".join(out) + LUA_DONE


def run_wrk(spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua_script(spec))
        script.flush()
        seconds = max(1, round(float(spec["duration"])))
        out = subprocess.run([wrk_path() or "wrk", "-t1", f"-c{spec['connections']}", f"-d{seconds}s",
                              "--timeout", "10s", "-s", script.name, f"http://127.0.0.1:{spec['port']}"],
                             capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if out.returncode or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {(out.stderr or out.stdout)[-500:]}")
    raw = json.loads(line[len("BENCHJSON "):])
    duration, ok = raw["us"] / 1e6, raw["requests"] - raw["status"]
    return {"duration": round(duration, 3), "ok": ok, "rps": round(ok / duration, 1),
            "non2xx": {"≥400": raw["status"]} if raw["status"] else {}, "errors": raw["errors"],
            "p50": raw["p50"] / 1000, "p99": raw["p99"] / 1000, "ttft_p50": None}


def run_driver(spec: dict[str, Any]) -> dict[str, Any]:
    limit = float(spec.get("duration", 0)) + (900 if spec.get("count") else 60)
    out = subprocess.run([PYTHON, "-m", "bench.driver", json.dumps(spec)], capture_output=True, text=True,
                         cwd=ROOT, env=clean_env(PYTHONPATH=ROOT), timeout=limit)
    if out.returncode:
        raise RuntimeError(f"bench.driver failed: {out.stderr[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def streamed(proc: Proc, spec: dict[str, Any]) -> dict[str, Any]:
    """Concurrent streams (bench/driver.py) against `proc`, and its CPU (/proc) per token chunk received."""
    cpu = proc.cpu()
    res = run_driver({**spec, "port": proc.port})
    res["cpu_chunk_us"] = (proc.cpu() - cpu) / res["chunks"] * 1e6 if res["chunks"] else float("nan")
    return res


def load(proc: Proc, spec: dict[str, Any], generator: str) -> dict[str, Any]:
    """Warm-up (a separate short run, its own ids), then the measured run."""
    spec = {**spec, "port": proc.port}
    run = run_wrk if generator == "wrk" and not spec.get("stream") and not spec.get("count") else run_driver
    if spec.get("warmup"):
        run({**spec, "duration": spec["warmup"], "run": spec.get("run", "") + "w"})
    cpu = proc.cpu()
    result = run(spec)
    cpu = proc.cpu() - cpu
    result.update(generator="wrk" if run is run_wrk else "python",
                  cpu_us=cpu / result["ok"] * 1e6 if result["ok"] else float("nan"))
    return result


def wrk_version() -> str:
    wrk = wrk_path()
    if not wrk:
        return "not installed"
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr or "wrk").splitlines()[0].split(" Copyright")[0].strip()

