"""A tiny run of the benchmark (`python -m bench --smoke`): it starts the service, the bare Quart app
and the fakes as real processes, drives them with the bench's own driver, and prints a table. Only
the shape of the row is checked, never a duration or a speed: `make bench` is where speed is measured."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_run_prints_the_ack_row(tmp_path):
    output, raw = tmp_path / "bench.md", tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "ack", "--generator", "python",
         "--output", str(output), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next((line for line in proc.stdout.splitlines() if line.startswith("| ACK throughput")), None)
    assert row is not None, proc.stdout[-3000:]
    service, reference, ratio = [cell.strip() for cell in row.strip().strip("|").split("|")][1:4]
    assert re.match(r"[\d,]+ req/s \(p99 [\d.]+ ms\)$", service), row
    assert re.match(r"[\d,]+ req/s \(p99 [\d.]+ ms\), bare Quart app$", reference), row
    assert re.fullmatch(r"\d+\.\d\d×", ratio), row
    assert row in output.read_text()
    [saved] = json.loads(raw.read_text())
    assert saved["name"] == "ack" and len(saved["figures"]["new"]) == 1


def test_bench_smoke_run_prints_the_floor_rows(tmp_path):
    """The floors rows: the service's CPU per completion and per relayed chunk beside the bare app's
    and each upstream client's, all measured (bench/clients.py runs each client in its own process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "floors", "--generator", "python"],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| floors: ")]
    assert len(rows) == 2, proc.stdout[-3000:]
    call, chunk = ([cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows)
    assert re.fullmatch(r"[\d,]+ µs per request", call[1]), call
    assert re.search(r"bare Quart app under hypercorn, a small JSON request: [\d,]+ µs; openai SDK as the service "
                     r"calls it \(with_raw_response\): [\d,]+ µs per call; openai SDK typed create\(\): [\d,]+ µs "
                     r"per call; aiohttp ClientSession: [\d,]+ µs per call$", call[2]), call
    assert re.fullmatch(r"[\d,]+ µs per chunk", chunk[1]), chunk
    assert re.search(r"chunks from a timer: [\d,]+ µs written; .*: [\d,]+ µs read; aiohttp: [\d,]+ µs read$",
                     chunk[2]), chunk
    assert all(re.fullmatch(r"\d+\.\d\d× \(bare app \+ SDK\)", row[3]) for row in (call, chunk))
