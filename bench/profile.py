"""Sampling profile of the running service with py-spy, summarised as text.

`py-spy record --format raw` writes collapsed stacks ("frame;frame;… count"). From them:
- by layer: which package the sampled (leaf) frame is in — app code, quart, hypercorn, h11,
  pydantic, structlog/logging, prometheus_client, asyncio/uvloop, …;
- self time: the leaf function;
- inclusive time: every function on the stack (counted once per sample), app code only,
  which points at the call sites to fix.
py-spy pauses the process for each sample (blocking mode, for consistent stacks), so throughput
under the profiler is lower than in the measured runs; shares, not absolute times, are what count.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
APP_DIRS = ("api/", "services/", "providers/", "storage/", "config/", "app.py")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    exe = py_spy()
    if not exe:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    return subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(max(1, round(seconds))),
                             "-r", str(rate), "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame(text: str) -> tuple[str, str]:
    match = FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    return match["func"], match["file"]


def layer(file: str) -> str:
    if file.startswith(APP_DIRS) or file in ("app.py",):
        return "app: " + file.split("/")[0].removesuffix(".py")
    head = file.split("/")[0]
    if head in ("asyncio", "uvloop"):
        return "event loop (asyncio/uvloop)"
    if head in ("logging", "structlog"):
        return "logging (structlog/logging)"
    if head.endswith(".py"):
        return "stdlib: " + head.removesuffix(".py")
    return head or "?"


def _any_file(frames: list[tuple[str, str]], *prefixes: str) -> bool:
    return any(f.startswith(prefixes) for _, f in frames)


def _any_func(frames: list[tuple[str, str]], *names: str) -> bool:
    return any(fn.startswith(names) or fn.endswith(names) for fn, _ in frames)


# What a sampled stack of the ACK path is spent on, first matching rule wins (heuristic, by stack
# content): the service's own work first, then the framework layers the bare baseline also has.
CAUSES: list[tuple[str, Any]] = [
    ("log lines (structlog: access log + outcome log)",
     lambda fr: _any_file(fr, "structlog/", "logging/", "services/logs.py")),
    ("Prometheus metrics", lambda fr: _any_file(fr, "prometheus_client/", "services/metrics.py")),
    ("worker task: claim, trigger match, outcome", lambda fr: _any_func(fr, "WorkerPool.")),
    ("body validation (pydantic model, validators)", lambda fr: _any_file(fr, "pydantic/", "api/models.py")),
    ("enqueue (dedupe cache, queue)", lambda fr: _any_func(fr, "MemoryQueue.enqueue", "PgQueue.enqueue")),
    ("Interaction() (uuid4, clock)", lambda fr: _any_file(fr, "services/interaction.py")),
    ("quart_schema response conversion", lambda fr: _any_file(fr, "quart_schema/")),
    ("response body (jsonify, timestamp)",
     lambda fr: _any_func(fr, "jsonify", "_timestamp") or _any_file(fr, "json/")),
    ("before/after_request hooks (request id, header)", lambda fr: _any_func(fr, "_bind_request", "_finish_request")),
    ("reading the body (get_data)", lambda fr: _any_func(fr, "get_data", "Body.")),
    ("handler, rest (content type, auth, checks)",
     lambda fr: _any_func(fr, "accept_interaction", "_check_content_type", "presented_key", "interaction")),
    ("routing (werkzeug URL map)", lambda fr: _any_file(fr, "werkzeug/routing") or
     _any_func(fr, "match_request", "create_url_adapter", "bind_to_request")),
    ("Quart request/response plumbing", lambda fr: fr[-1][1].startswith(("quart/", "werkzeug/"))),
    ("Hypercorn + h11 (HTTP parsing, serialising)", lambda fr: fr[-1][1].startswith(("hypercorn/", "h11/"))),
    ("event loop, socket I/O, task switching", lambda fr: True),
]


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    total = 0
    other_threads = 0
    by_layer: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    app_self: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        if frames[0][1].startswith("threading.py"):
            # a helper thread (e.g. the executor that ran getaddrinfo once): py-spy may report it
            # active while it waits in C; the event loop thread is what serves requests
            other_threads += count
            continue
        total += count
        for cause, rule in CAUSES:
            if rule(frames):
                causes[cause] += count
                break
        func, file = frames[-1]
        by_layer[layer(file)] += count
        self_time[f"{func} ({file})"] += count
        seen: set[str] = set()
        for f_func, f_file in frames:
            if f_file.startswith(APP_DIRS) or f_file == "app.py":
                key = f"{f_func} ({f_file})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
        # the innermost app frame: where app code spends (itself or in what it calls)
        for f_func, f_file in reversed(frames):
            if (f_file.startswith(APP_DIRS) or f_file == "app.py") and f_func not in ("main", "<module>"):
                app_self[f"{f_func} ({f_file})"] += count
                break

    def share(counter: Counter[str], n: int = top) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {"samples": total, "other_thread_samples": other_threads, "by_layer": share(by_layer, 12), "self": share(self_time),
            "app_inclusive": share(inclusive), "app_innermost": share(app_self),
            "causes": [(name, causes.get(name, 0)) for name, _ in CAUSES], "rate_hz": 100}


def render(summary: dict[str, Any]) -> str:
    lines = [f"samples: {summary['samples']} (event loop thread; {summary.get('other_thread_samples', 0)} "
             "more in helper threads, left out)"]
    for title, key in (("by layer (leaf frame's package), % of samples", "by_layer"),
                       ("self time (leaf function), % of samples", "self"),
                       ("app code, innermost app frame on the stack (app code + what it calls), %", "app_innermost"),
                       ("app code, inclusive (function anywhere on the stack), %", "app_inclusive")):
        lines.append("")
        lines.append(title)
        lines += [f"  {pct:5.1f}  {name}" for name, pct in summary[key]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(summarize(Path(sys.argv[1]))))
