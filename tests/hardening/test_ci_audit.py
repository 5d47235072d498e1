"""The CI audit step (.ci/audit.py): fail on a known vulnerability, degrade clearly when no
vulnerability source can be reached, never pass silently."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

SPEC = importlib.util.spec_from_file_location("ci_audit", Path(__file__).resolve().parents[2] / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(audit)

VULNERABLE = {"dependencies": [
    {"name": "httpx", "version": "0.28.1", "vulns": []},
    {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}]}]}
ALL_SKIPPED = {"dependencies": [
    {"name": "quart", "skip_reason": "Dependency not found on PyPI and could not be audited: quart (0.22.0)"},
    {"name": "httpx", "skip_reason": "Dependency not found on PyPI and could not be audited: httpx (0.28.1)"}]}
PARTIAL = {"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []},
                            {"name": "quart", "skip_reason": "not found"}]}


def test_a_known_vulnerability_fails_naming_it_and_its_fix():
    code, message = audit.decide(VULNERABLE)
    assert code == 1 and "jinja2==3.1.2" in message and "GHSA-h5c8-rqwp-cp95" in message and "3.1.3" in message


def test_nothing_audited_is_reported_as_not_audited_not_as_clean():
    code, message = audit.decide(ALL_SKIPPED)
    assert code == 0 and "could not audit" in message and "no known vulnerabilities" not in message


def test_a_partial_audit_passes_and_lists_what_it_could_not_check():
    code, message = audit.decide(PARTIAL)
    assert code == 0 and "1 audited" in message and "quart" in message


def fake_pip_audit(monkeypatch, answers):
    calls = []

    def run(command, **kwargs):
        service = command[command.index("--vulnerability-service") + 1]
        calls.append(service)
        answer = answers[service]
        if isinstance(answer, dict):
            return SimpleNamespace(stdout=json.dumps(answer), stderr="", returncode=1 if "vulns" in str(answer) else 0)
        return SimpleNamespace(stdout="", stderr=answer, returncode=1)

    monkeypatch.setattr(audit.subprocess, "run", run)
    return calls


def test_unreachable_pypi_falls_back_to_osv_which_can_fail_the_build(monkeypatch, capsys):
    calls = fake_pip_audit(monkeypatch, {"pypi": ALL_SKIPPED, "osv": VULNERABLE})
    assert audit.main(["audit.py"]) == 1
    assert calls == ["pypi", "osv"] and "KNOWN VULNERABILITIES" in capsys.readouterr().err


def test_no_source_reachable_degrades_with_a_clear_message(monkeypatch, capsys):
    fake_pip_audit(monkeypatch, {"pypi": ALL_SKIPPED,
                                 "osv": "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'"})
    assert audit.main(["audit.py"]) == 0
    err = capsys.readouterr().err
    assert "AUDIT SKIPPED" in err and "api.osv.dev" in err


@pytest.mark.parametrize("pypi", [VULNERABLE, PARTIAL])
def test_a_verdict_from_pypi_is_final(monkeypatch, pypi):
    calls = fake_pip_audit(monkeypatch, {"pypi": pypi, "osv": ALL_SKIPPED})
    assert audit.main(["audit.py"]) == (1 if pypi is VULNERABLE else 0) and calls == ["pypi"]


def test_the_pins_are_exact():
    """pip-audit audits what is pinned: every runtime requirement is pinned to one version."""
    lines = [line.split("#")[0].strip() for line in (Path(audit.__file__).parents[1] / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line]
    assert pins and all("==" in pin for pin in pins), pins
