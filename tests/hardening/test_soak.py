"""`make soak`: SOAK_SECONDS of mixed traffic with injected faults (tests/hardening/soak.py).
Skipped unless SOAK_SECONDS is set; the figures are printed and written to SOAK_REPORT (if set)."""

from __future__ import annotations

import json
import os

import pytest

from tests.hardening.soak import run_soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "0") or 0)


@pytest.mark.skipif(SECONDS <= 0, reason="the soak runs with `make soak` (SOAK_SECONDS)")
def test_soak(pg, fake_ollama, fake_openai, fake_router, tmp_path):
    figures = run_soak(SECONDS, tmp_path, pg, fake_ollama, fake_openai, fake_router)
    text = json.dumps(figures, indent=2, default=str)
    print("\nSOAK FIGURES\n" + text)
    if os.environ.get("SOAK_REPORT"):
        with open(os.environ["SOAK_REPORT"], "w") as out:
            out.write(text + "\n")
    rss = figures["memory"]["rss_kib"]
    # Flat: after warm-up, the end is within 20 % (or 16 MiB) of the middle.
    assert rss["end"] <= max(rss["middle"] * 1.2, rss["middle"] + 16 * 1024), rss
