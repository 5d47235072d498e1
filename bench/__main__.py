"""`python -m bench` / `make bench`: run the benchmark suite and write BENCHMARKS.md.

    make bench                                # everything (≈ 10 min), rewrites BENCHMARKS.md
    make bench BENCH_ARGS="--quick"           # shorter runs, fewer rounds (≈ 3 min)
    make bench BENCH_ARGS="--only ack"        # one benchmark (repeatable, or comma-separated)
    python -m bench --list                    # the benchmark names

Full runs rewrite the generated part of BENCHMARKS.md; partial or quick runs write
bench/results/partial.md instead (unless --output is given). Raw numbers go to a .json beside it.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import payloads, report
from bench.drive import wrk_path
from bench.procs import ROOT
from bench.suite import BENCHMARKS, Context, Row, Settings, run_one


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 short rounds, smaller counts")
    p.add_argument("--smoke", action="store_true", help="a few seconds: 1 tiny round (used by the tests)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only these benchmarks (repeat or comma-separate); see --list")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--rounds", type=int, help="rounds per benchmark (default 5, quick 3)")
    p.add_argument("--duration", type=float, help="seconds per measured run (default 3, quick 2; whole seconds with wrk)")
    p.add_argument("--profile-seconds", type=float, help="py-spy duration per profile (default 15, quick 4)")
    p.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                   help="throughput load generator (auto: wrk when installed)")
    p.add_argument("--output", type=Path, help="markdown file to update (default: BENCHMARKS.md for full runs)")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    return p.parse_args(argv)


def settings_for(args: argparse.Namespace) -> Settings:
    s = Settings()
    if args.quick:
        s.rounds, s.duration, s.warmup = 3, 2.0, 1.0
        s.e2e_count, s.memory_counts, s.profile_s = 800, (1_000, 10_000), 4.0
        s.quiet_wait = 3.0
    if args.smoke:
        s.rounds, s.duration, s.warmup, s.e2e_count = 1, 0.5, 0.2, 100
        s.memory_counts, s.profile_s, s.quiet_wait, s.pending = (100, 300), 1.0, 0.0, 50
        s.connections = 8
    if args.rounds:
        s.rounds = args.rounds
    if args.duration:
        s.duration = args.duration
    if args.profile_seconds:
        s.profile_s = args.profile_seconds
    wrk = wrk_path()
    if args.generator == "wrk" and not wrk:
        sys.exit("wrk is not installed (apt-get install -y wrk), or use --generator python")
    s.generator = "wrk" if (args.generator == "wrk" or (args.generator == "auto" and wrk)) else "python"
    if args.smoke and args.generator == "auto":
        s.generator = "python"  # wrk measures whole seconds only; the smoke run is sub-second
    return s


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    payloads.check_texts()
    settings = settings_for(args)
    partial = bool(args.only) or args.quick or args.smoke
    output = args.output or (ROOT / "bench" / "results" / "partial.md" if partial else ROOT / "BENCHMARKS.md")
    command = report.command_line()
    info = report.machine()
    workdir = Path(tempfile.mkdtemp(prefix="aim-bench-"))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    log(f"bench: {', '.join(names)}; {settings.rounds} rounds × {settings.duration:g} s; generator "
        f"{settings.generator}; logs in {workdir}")
    started = time.time()
    rows: list[Row] = []
    ctx = Context(settings, workdir, log)
    try:
        for name in names:
            t0 = time.monotonic()
            log(f"[{name}] …")
            new = run_one(ctx, name)
            rows += new
            for row in new:
                log(f"[{name}] {row.verdict}: {row.service} | baseline {row.baseline} | {row.ratio}"
                    f" ({time.monotonic() - t0:.0f} s)")
    except KeyboardInterrupt:
        log("interrupted: stopping the processes")
        return 130
    finally:
        ctx.close()
    elapsed = time.time() - started
    results = report.render_results(rows, info, command, started, elapsed, settings)
    print(results)
    if not args.no_write:
        output.parent.mkdir(parents=True, exist_ok=True)
        report.write_markdown(output, results)
        json_path = (ROOT / "bench" / "results" / "latest.json") if output.name == "BENCHMARKS.md" \
            else output.with_suffix(".json")
        report.write_json(json_path, rows, info, command, settings)
        for prof in workdir.glob("profile-*.txt"):
            dest = json_path.parent / prof.name
            shutil.copyfile(prof, dest)
        log(f"wrote {output} and {json_path}")
    if not any(r.verdict == "error" for r in rows):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log(f"some benchmarks failed; process logs kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
