#!/usr/bin/env python3
"""CI step: audit the pinned runtime requirements for known vulnerabilities with pip-audit.

    python .ci/audit.py [requirements.txt]

Exit 1 when pip-audit reports a known vulnerability in any pin (direct or transitive): that must fail
CI. The PyPI vulnerability service is asked first, then OSV (api.osv.dev) when PyPI could not answer.
When neither source can be reached (no network, or a package index that does not serve PyPI's
per-version JSON API, so that every dependency is skipped as "not found"), the audit cannot say
anything: it prints that clearly and exits 0 rather than fail CI for network reasons.
A partial audit (some dependencies audited, some skipped) passes when no vulnerability was found,
and lists what it could not check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

VULNERABLE, CLEAN, UNREACHABLE = 1, 0, 0


def decide(report: dict[str, Any]) -> tuple[int, str]:
    """(exit code, message) for a pip-audit JSON report."""
    deps = report.get("dependencies", [])
    found = [(d["name"], d["version"], v.get("id"), v.get("fix_versions") or [])
             for d in deps for v in d.get("vulns") or []]
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    if found:
        lines = [f"  {name}=={version}: {vid} (fixed in: {', '.join(fix) or 'no fix yet'})"
                 for name, version, vid, fix in found]
        return VULNERABLE, "pip-audit: KNOWN VULNERABILITIES in the pinned requirements:\n" + "\n".join(lines)
    if deps and not audited:
        return UNREACHABLE, (f"pip-audit: could not audit: the vulnerability source was unreachable for all "
                             f"{len(deps)} dependencies (e.g. {skipped[0]['skip_reason']}). Not a pass: run "
                             "`make audit` where PyPI's per-version JSON API is reachable.")
    note = f"; {len(skipped)} not checked: " + ", ".join(d["name"] for d in skipped) if skipped else ""
    return CLEAN, f"pip-audit: no known vulnerabilities in {len(audited)} audited dependencies{note}"


def run(requirements: str, service: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "pip_audit", "-r", requirements, "--format", "json",
               "--progress-spinner", "off", "--vulnerability-service", service]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        return UNREACHABLE, f"pip-audit ({service}): could not audit: timed out reaching the vulnerability source"
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        if "No module named pip_audit" in proc.stderr:
            return 1, "pip-audit: not installed (pip install -r requirements-dev.txt)"
        error = (proc.stderr or proc.stdout).strip().splitlines()
        reason = error[-1][:300] if error else f"exit code {proc.returncode}"
        return UNREACHABLE, f"pip-audit ({service}): could not audit (network or index problem): {reason}"
    code, message = decide(report)
    unreachable = code == UNREACHABLE and message.startswith("pip-audit: could not audit")
    return code, ("unreachable: " if unreachable else "") + message.replace("pip-audit:", f"pip-audit ({service}):")


def main(argv: list[str]) -> int:
    requirements = argv[1] if len(argv) > 1 else "requirements.txt"
    messages = []
    for service in ("pypi", "osv"):
        code, message = run(requirements, service)
        if code or "could not audit" not in message:  # a verdict: vulnerable, or audited clean
            print(message, file=sys.stderr if code else sys.stdout)
            return code
        messages.append(message.removeprefix("unreachable: "))
    print("\n".join(messages) + "\nAUDIT SKIPPED: no vulnerability source reachable from here (not a failure "
          "of the code; run `make audit` with network access).", file=sys.stderr)
    return UNREACHABLE


if __name__ == "__main__":
    sys.exit(main(sys.argv))
