"""LOG_FORMAT (§9): json for machines, console (one short readable line per event) for people, auto."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from observability import logs
from tests.app_process import start_app
from tests.support import IsolatedSettings


@pytest.fixture
def configured():
    """configure_logging() onto a given stream; the suite's configuration is restored afterwards."""
    def configure(stream, log_format: str) -> None:
        logs.configure_logging("INFO", "salt", ["sk-secret-1234"], stream, log_format)

    yield configure
    logs.configure_logging("WARNING")


def _emit() -> None:
    log = logs.get_logger("tests.format")  # a new logger: bound to the configuration made just now
    log.info("interaction finished", action="process_interaction", result="replied", trigger="greeting",
             interaction_id="21eefeaa-d8d3-4719-8ed1-212f699705f3", execution_time_ms=12.5)
    log.warning("provider call failed", action="generate", error="token sk-secret-1234 refused")
    logging.getLogger("hypercorn.error").info("Running on http://127.0.0.1:8005 (CTRL + C to quit)")


def test_console_lines_are_short_readable_and_without_json(configured):
    out = io.StringIO()
    configured(out, "console")
    _emit()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert len(line) < 200 and "{" not in line and "\x1b[" not in line  # not a terminal: no colour
    assert " INFO    interaction finished  action=process_interaction  result=replied" in lines[0]
    assert "interaction_id=21eefeaa " in lines[0] + " "
    assert "WARNING provider call failed" in lines[1] and "sk-secret-1234" not in lines[1] and "***" in lines[1]
    assert " INFO    Running on http://127.0.0.1:8005 (CTRL + C to quit)" in lines[2]  # a stdlib record


def test_json_lines_are_unchanged_objects(configured):
    out = io.StringIO()
    configured(out, "json")
    _emit()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records][:2] == ["interaction finished", "provider call failed"]
    first = records[0]
    assert first["interaction_id"] == "21eefeaa-d8d3-4719-8ed1-212f699705f3" and first["level"] == "info"
    assert {"timestamp", "module", "component", "action", "result"} <= set(first)
    assert "sk-secret-1234" not in out.getvalue()


def test_auto_picks_json_when_stdout_is_not_a_terminal(configured):
    out = io.StringIO()
    configured(out, "auto")
    _emit()
    assert all(json.loads(line) for line in out.getvalue().splitlines())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_auto_picks_coloured_console_lines_on_a_terminal(configured):
    master, slave = os.openpty()
    with os.fdopen(slave, "w", encoding="utf-8") as terminal:
        configured(terminal, "auto")
        logs.get_logger("tests.format").info("service stopped", action="shutdown")
        terminal.flush()
        text = os.read(master, 4096).decode()
    os.close(master)
    assert "service stopped" in text and "\x1b[" in text and "{" not in text


def test_the_start_up_summary_is_a_short_brief_in_console_mode(configured):
    out = io.StringIO()
    configured(out, "console")
    summary = IsolatedSettings(database_url="postgresql://ai:pw@db:5432/ai").summary()
    assert len(json.dumps(summary, default=str)) > 1500  # what the JSON line carries
    logs.get_logger("tests.format").info("service started", action="startup", config=summary, store="postgresql")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(len(line) < 200 and "{" not in line for line in lines)
    assert "service started  action=startup  store=postgresql" in lines[0]
    assert "provider=ollama (llama3.2 at localhost:11434)" in lines[1] and "replies=console" in lines[1]
    assert "database=set" in lines[1] and "pw@" not in out.getvalue()


def test_a_real_process_with_stdout_to_a_file_logs_json(tmp_path):
    app = start_app(tmp_path)
    try:
        app.wait_up()
    finally:
        app.stop()
    records = [json.loads(line) for line in app.lines() if line.strip()]
    started = next(r for r in records if r.get("event") == "service started")
    assert started["config"]["log_format"] == "auto" and started["config"]["router_api_url"] is None
