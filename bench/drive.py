"""Running a load generator as a separate process: wrk (with a generated Lua script) or bench/loadgen.py.

Both take the same spec and return the same result shape: duration, completed, ok (2xx), rps (2xx/s),
statuses, non_2xx, errors, latency_ms percentiles, plus `gen_cpu` (cores the generator used) and
`target_cpu` (cores the measured process used over the same wall time), so every row can show that
the generator was not the bottleneck.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bench import payloads
from bench.procs import CLK_TCK, PYTHON, ROOT, Proc, clean_env


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LUA_COMMON = r"""
statuses = {}
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do agg[tostring(k)] = (agg[tostring(k)] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%d,"requests":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"lat":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%f}}\n',
    summary.duration, summary.requests, table.concat(parts, ","),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


def lua_script(spec: dict[str, Any]) -> str:
    req = spec["request"]
    headers = {"Content-Type": "application/json", **(req.get("headers") or {})}
    lua_headers = "{" + ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}" for k, v in headers.items()) + "}"
    path = _lua_str(req["path"])
    if req["kind"] == "openai":
        body = payloads.openai_body(bool(req.get("stream"))).decode()
        return (f'wrk.method = "POST"\nwrk.path = {path}\nwrk.body = {_lua_str(body)}\n'
                f"wrk.headers = {lua_headers}\n" + _LUA_COMMON)
    if req["kind"] != "interaction":
        raise ValueError(f"wrk cannot drive request kind {req['kind']!r}")
    if req.get("trigger") not in (False, True, None):
        raise ValueError("wrk drives quiet or trigger bodies only")
    texts = payloads.TRIGGER_TEXTS if req.get("trigger") else payloads.QUIET_TEXTS
    lua_texts = "{" + ", ".join(_lua_str(t) for t in texts) + "}"
    names = {"run": "run", "n": "n", "u": "u", "c": "c", "text": "text"}
    args = ", ".join(names[a] for a in payloads.INTERACTION_ARGS)
    users, channels = int(req.get("users", 10_000)), int(req.get("channels", 500))
    return f"""
local run = {_lua_str(req["run"])}
local tmpl = {_lua_str(payloads.INTERACTION_TEMPLATE)}
local texts = {lua_texts}
local hdrs = {lua_headers}
local counter = -1
local USERS, CHANNELS, THREADS = {users}, {channels}, {int(spec.get("threads", 1))}
function request()
  counter = counter + 1
  local n = counter * THREADS + tid
  local u = n
  if USERS > 0 then u = n % USERS end
  local c = math.floor(n / 10)
  if CHANNELS > 0 then c = n % CHANNELS end
  local text = texts[(n % #texts) + 1]
  local body = string.format(tmpl, {args})
  return wrk.format("POST", {path}, hdrs, body)
end
""" + _LUA_COMMON


def _wait_with_usage(popen: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for the child and return (exit code, its CPU seconds) from wait4's rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
        if pid:
            popen.returncode = os.waitstatus_to_exitcode(status)
            return popen.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            popen.kill()
            pid, status, usage = os.wait4(popen.pid, 0)
            popen.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"load generator did not finish within {timeout:.0f}s")
        time.sleep(0.02)


def _spawn(argv: list[str], timeout: float, cwd: Path) -> tuple[str, str, float, float]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        popen = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd,
                                 env=clean_env(PYTHONPATH=str(ROOT)))
        code, cpu = _wait_with_usage(popen, timeout)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{argv[0]} exited {code}: {stderr[-1500:]}{stdout[-500:]}")
    return stdout, stderr, cpu, wall


def run_wrk(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    wrk = wrk_path()
    assert wrk, "wrk is not installed"
    script = workdir / f"wrk-{os.getpid()}-{time.monotonic_ns()}.lua"
    script.write_text(lua_script(spec))
    try:
        t_start = time.monotonic()
        stdout, _, cpu, wall = _spawn(
            [wrk, f"-t{spec.get('threads', 1)}", f"-c{spec['connections']}", f"-d{max(1, round(float(spec['duration'])))}s",
             "--timeout", "10s", "-s", str(script), f"http://{spec['host']}:{spec['port']}"],
            float(spec["duration"]) + 60, workdir)
        t_end = time.monotonic()
    finally:
        script.unlink(missing_ok=True)
    line = next((l for l in stdout.splitlines() if l.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{stdout[-2000:]}")
    raw = json.loads(line[len("BENCHJSON "):])
    duration = raw["duration_us"] / 1e6
    statuses = {k: v for k, v in sorted(raw["statuses"].items())}
    ok = sum(v for k, v in statuses.items() if 200 <= int(k) < 300)
    lat = raw["lat"]
    return {
        "generator": "wrk", "duration": round(duration, 4), "completed": raw["requests"], "ok": ok,
        "rps": round(ok / duration, 1) if duration else 0.0, "statuses": statuses,
        "non_2xx": raw["requests"] - ok, "errors": {k: v for k, v in raw["errors"].items() if v},
        "latency_ms": {k: round(lat[k] / 1000, 3) for k in ("p50", "p90", "p99", "p999", "max", "mean")},
        "ttft_ms": None, "lag_ms": None, "cpu_s": cpu, "wall_s": wall,
        "t_start": t_start, "t_end": t_end,
    }


def run_python(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    budget = float(spec.get("duration", 0)) + float(spec.get("warmup", 0)) + float(spec.get("timeout_s", 300))
    stdout, _, cpu, wall = _spawn([PYTHON, "-m", "bench.loadgen", json.dumps(spec)], budget, workdir)
    result = json.loads(stdout.strip().splitlines()[-1])
    result["cpu_s"], result["wall_s"] = cpu, wall
    return result


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class CpuSampler:
    """Samples CPU time of the target, of our other processes and of the whole machine every 50 ms
    in a thread, to get each one's usage (in cores) over a time window."""

    def __init__(self, target: Proc, others: list[Proc] | tuple[Proc, ...] = (),
                 extra: Callable[[], float] | None = None) -> None:
        self.target = target
        self.extra = extra
        self.others = [p for p in others if p is not target]
        self.samples: list[tuple[float, float, float, float, float]] = []  # (t, target, others, machine, extra)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        others = 0.0
        for proc in self.others:
            try:
                others += proc.cpu_seconds()
            except OSError:
                pass
        extra = self.extra() if self.extra else 0.0
        self.samples.append((time.monotonic(), self.target.cpu_seconds(), others, machine_busy_seconds(), extra))

    def _run(self) -> None:
        while True:
            try:
                self._sample()
            except OSError:
                return
            if self._stop.wait(0.05):
                return

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._sample()
        except OSError:
            pass

    def rates(self, start: float, end: float) -> tuple[float, float, float, float] | None:
        """Cores used by (target, our other processes, whole machine, extra) between start and end."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.2:
            return None
        first, last = inside[0], inside[-1]
        dt = last[0] - first[0]
        return tuple((last[i] - first[i]) / dt for i in range(1, 5))  # type: ignore[return-value]


def postgres_cpu_seconds(database: str) -> Callable[[], float]:
    """CPU seconds of the PostgreSQL backends serving `database` (their title names it)."""
    needle = f" {database} ".encode()

    def read() -> float:
        total = 0.0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmd = fh.read()
                if not cmd.startswith(b"postgres:") or needle not in cmd:
                    continue
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            except OSError:
                continue
        return total

    return read


def drive(target: Proc, spec: dict[str, Any], generator: str, workdir: Path,
          others: list[Proc] | tuple[Proc, ...] = (), extra: Callable[[], float] | None = None) -> dict[str, Any]:
    """Run one load against `target`.

    Adds `gen_cpu` (cores the generator used over its life, start-up included: an upper bound),
    `target_cpu` (cores the target used during the measured window), `others_cpu` (our other
    processes: fakes, the idle side), `machine_cpu` (all cores busy) and `foreign_cpu` (what the
    rest of the machine — other users — took meanwhile: machine − ours)."""
    spec = {"host": "127.0.0.1", "port": target.port, **spec}
    use_wrk = generator == "wrk" and spec.get("mode", "closed") == "closed" and "count" not in spec \
        and not spec.get("ttft") and not spec.get("pace")
    with CpuSampler(target, others, extra) as sampler:
        if use_wrk:
            if spec.get("warmup"):  # a separate short run with its own ids (never duplicates)
                warm = {**spec, "duration": spec["warmup"], "request": {**spec["request"]}}
                if "run" in warm["request"]:
                    warm["request"]["run"] += "w"
                run_wrk(warm, workdir)
            result = run_wrk(spec, workdir)
        else:
            result = run_python(spec, workdir)
    result["gen_cpu"] = round(result["cpu_s"] / (result["wall_s"] or 1e-9), 3)
    rates = sampler.rates(result["t_start"], result["t_end"])
    if rates is None:
        result.update(target_cpu=None, others_cpu=None, machine_cpu=None, foreign_cpu=None, extra_cpu=None)
    else:
        target_cpu, others_cpu, machine_cpu, extra_cpu = rates
        result.update(target_cpu=round(target_cpu, 3), others_cpu=round(others_cpu, 3),
                      machine_cpu=round(machine_cpu, 3), extra_cpu=round(extra_cpu, 3) if extra else None,
                      foreign_cpu=round(max(0.0, machine_cpu - target_cpu - others_cpu - extra_cpu
                                            - result["gen_cpu"]), 3))
    return result
