"""Imports flow one way: the HTTP layer → the domain → storage and upstream clients → config and
observability (docs/layout.md). Each package may import only the packages of its own layer's
allowed list; a new import against the flow fails here, naming the file and the import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package → the project packages it may import (besides itself)
ALLOWED = {
    "app": {"web", "config", "observability"},
    "web": {"runtime", "interactions", "completions", "llm", "storage", "config", "observability"},
    "runtime": {"interactions", "completions", "llm", "router", "storage", "config", "observability"},
    "interactions": {"llm", "router", "storage", "config", "observability"},
    "completions": {"llm", "storage", "config", "observability"},
    "llm": {"config", "observability"},
    "router": {"config", "observability"},
    "storage": {"config", "observability"},
    "observability": {"config"},
    "config": set(),
}


def project_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return [(line, name) for line, name in found if name in ALLOWED]


def test_imports_flow_one_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        files = [ROOT / f"{package}.py"] if (ROOT / f"{package}.py").exists() else sorted((ROOT / package).rglob("*.py"))
        assert files, package
        for path in files:
            for line, name in project_imports(path):
                if name != package and name not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert wrong == []


def test_the_check_sees_a_backward_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from web.errors import ApiError\nimport storage.db\n")
    assert project_imports(sample) == [(1, "web"), (2, "storage")]


def test_the_image_holds_every_package_of_the_app():
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "requirements" not in line:
            copied |= {part.rstrip("/").removesuffix(".py") for part in line.split()[1:-1] if not part.startswith("--")}
    assert set(ALLOWED) <= copied, sorted(set(ALLOWED) - copied)
