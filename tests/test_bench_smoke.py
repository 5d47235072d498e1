"""A tiny run of the benchmark harness (`python -m bench --smoke`): it starts the service, the bare
baseline app and the fakes as real processes, drives them, and prints a table with numbers.
Only the shape is checked, never a duration or a speed: `make bench` is where speed is measured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_run_prints_a_table_with_numbers(tmp_path):
    output = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "ack", "--generator", "python",
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next((line for line in proc.stdout.splitlines() if line.startswith("| ACK throughput")), None)
    assert row is not None, proc.stdout[-3000:]
    service, baseline, ratio = [cell.strip() for cell in row.strip().strip("|").split("|")][1:4]
    assert re.match(r"[\d,]+ req/s", service), row
    assert re.match(r"[\d,]+ req/s", baseline), row
    assert re.fullmatch(r"\d+\.\d+×", ratio), row
    assert "| ACK throughput" in output.read_text()
    assert output.with_suffix(".json").exists()
