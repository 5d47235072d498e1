"""`python -m bench` / `make bench`: the service against references measured in the same run.

    make bench                                   # every row (≈ 10 min), Hypercorn
    make bench BENCH_ARGS="--quick"              # 3 short rounds
    make bench BENCH_ARGS="--against HEAD~1"     # also the service at HEAD~1, side by side: new/old
    python -m bench --only ack --server uvicorn  # one row, the service and the bare app under uvicorn
    python -m bench --list                       # the row names
    python -m bench --only peers                 # vs LiteLLM proxy (.venv-litellm or LITELLM_BIN) and
                                                 # Portkey's gateway (npm, into .bench-node/)

The table goes to stdout; --output FILE writes it to FILE too (between the results markers when FILE
has them, as BENCHMARKS.md does), --json FILE every round's figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack, closing
from importlib import metadata
from pathlib import Path

from bench.load import wrk_path, wrk_version
from bench.procs import ROOT, SERVERS, checkout, short_rev
from bench.rows import ROWS, Harness, Row, Settings, med

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 rounds of 2 s, 1k → 10k interactions for memory")
    p.add_argument("--smoke", action="store_true", help="one tiny round (the tests use it)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="these rows only (repeat or comma-separate)")
    p.add_argument("--list", action="store_true", help="list the row names and exit")
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=float, help="seconds per measured run (whole seconds with wrk)")
    p.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                   help="auto: wrk when installed; SSE and counted runs always use bench/driver.py")
    p.add_argument("--server", default="hypercorn", help=f"one of {', '.join(SERVERS)} or both, comma-separated")
    p.add_argument("--against", metavar="REV", help="also run the service at REV (a temporary git worktree)")
    p.add_argument("--output", type=Path, help="write the results here too")
    p.add_argument("--json", type=Path, help="write every round's figures here")
    return p.parse_args(argv)


def settings(args: argparse.Namespace, server: str) -> Settings:
    s = Settings(server=server)
    if args.quick:
        s.rounds, s.duration, s.memory = 3, 2.0, (1_000, 10_000)
    if args.smoke:
        s.rounds, s.duration, s.warmup, s.connections, s.pending, s.memory = 1, 0.5, 0.2, 8, 50, (100, 300)
    s.rounds, s.duration = args.rounds or s.rounds, args.duration or s.duration
    if args.generator == "wrk" and not wrk_path():
        sys.exit("wrk is not installed (apt-get install -y wrk); or --generator python")
    auto = args.generator == "auto" and wrk_path() and not args.smoke  # wrk runs whole seconds only
    s.generator = "wrk" if args.generator == "wrk" or auto else "python"
    return s


def change(row: Row) -> str:
    """new/old of the row's figure: the median of the per-round ratios, better or worse, their range."""
    new, old = row.figures.get("new"), row.figures.get("old")
    if not new or not old:
        return "—"
    per_round = [a / b for a, b in zip(new, old) if b]
    q = med(per_round)
    worse = round(((1 - q) if row.higher_better else (q - 1)) * 100)
    verdict = "same" if not worse else f"{abs(worse)} % {'worse' if worse > 0 else 'better'}"
    spread = f"; rounds {min(per_round):.2f}–{max(per_round):.2f}" if len(per_round) > 1 else ""
    return f"{q:.2f}× ({verdict}{spread}){' ❌' if worse > 10 else ''}"


def table(rows: list[tuple[str, Row]], old: str | None, servers: list[str]) -> str:
    cols = ["row", "service", "reference (same run)", "ratio", "target"]
    cols = (["server"] if len(servers) > 1 else []) + cols + ([old, "its ratio", "new/old"] if old else [])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for server, row in rows:
        cells = [row.title, row.cells.get("new", "—"), row.ref, row.ratios.get("new", "—"), row.target or "—"]
        cells = ([server] if len(servers) > 1 else []) + cells
        cells += [row.cells.get("old", "—"), row.ratios.get("old", "—"), change(row)] if old else []
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [f"- {row.title}{f' ({server})' if len(servers) > 1 else ''}: {row.notes}"
             for server, row in rows if row.notes]
    return "\n".join(lines + ([""] + notes if notes else []))


def header(s: Settings, servers: list[str], old: str | None, started: float, load: float) -> str:
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("quart", *SERVERS, "uvloop", "httptools")
                         if _installed(p))
    cmd = ("make bench" + (f' BENCH_ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else "")
           if "MAKELEVEL" in os.environ else "python -m bench " + " ".join(sys.argv[1:]))
    return (f"`{cmd.strip()}` at {commit.stdout.strip() or '?'}{f' against {old}' if old else ''}, "
            f"started {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))}, "
            f"{(time.time() - started) / 60:.1f} min. Server: {', '.join(servers)}. "
            f"Load: {'wrk (' + wrk_version() + ')' if s.generator == 'wrk' else 'bench/driver.py'}; SSE and counted "
            f"runs bench/driver.py. {s.rounds} rounds × {s.duration:g} s per side after {s.warmup:g} s warm-up.\n"
            f"Machine: {len(os.sched_getaffinity(0))} cores ({cpu}), {platform.python_implementation()} "
            f"{platform.python_version()}, {versions}; 1-minute load average at the start {load:.2f}.\n")


def _installed(package: str) -> bool:
    try:
        return bool(metadata.version(package))
    except metadata.PackageNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        print("\n".join(ROWS))
        return 0
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(ROWS)
    servers = [x.strip() for x in args.server.split(",")]
    if set(names) - set(ROWS) or set(servers) - set(SERVERS):
        print(f"rows: {', '.join(ROWS)}; servers: {', '.join(SERVERS)}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="aim-bench-"))
    signal.signal(signal.SIGTERM, _interrupt)  # processes and the worktree are cleaned up on the way out
    started, load, results, failed = time.time(), os.getloadavg()[0], [], False
    with ExitStack() as stack:
        versions, labels = {"new": ROOT}, {"new": "service"}
        old = None
        if args.against:
            old = f"old ({short_rev(args.against)})"
            try:
                versions["old"], labels["old"] = stack.enter_context(checkout(args.against, workdir / "old")), old
            except subprocess.CalledProcessError:
                shutil.rmtree(workdir, ignore_errors=True)
                return 2  # git said why
        for server in servers:
            s = settings(args, server)
            log(f"bench under {server}: {', '.join(names)}; {s.rounds} rounds × {s.duration:g} s; {s.generator}; "
                f"logs in {workdir}")
            (workdir / server).mkdir()
            with closing(Harness(s, versions, labels, workdir / server, log)) as harness:
                for name in names:
                    log(f"[{name}]")
                    try:
                        results += [(server, row) for row in ROWS[name](harness)]
                    except Exception as exc:  # noqa: BLE001 - one broken row must not hide the others
                        failed = True
                        log(traceback.format_exc())
                        why = f"error: {type(exc).__name__}: {exc}"[:300]
                        results.append((server, Row(name, name, "—", notes=why)))
    text = header(s, servers, old, started, load) + "\n" + table(results, old, servers) + "\n"
    print(text)
    if args.output:
        current = args.output.read_text() if args.output.exists() else ""
        if BEGIN in current and END in current:
            head, _, rest = current.partition(BEGIN)
            text = f"{head}{BEGIN}\n{text}{END}{rest.partition(END)[2]}"
        args.output.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([{"server": sv, **dataclasses.asdict(r)} for sv, r in results], indent=1))
    if failed:
        log(f"some rows failed; process logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
