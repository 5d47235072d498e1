"""The CI check .ci/private_names.py: each way of touching a third-party package's private name is
reported at its line; the project's own private names, stdlib modules' privates and the namedtuple
API are not. Sample trees are written to tmp_path; third-party packages are told by name only, so
`quart`, `werkzeug`, `openai` need not be importable. (Whether this repository is clean is for CI to
run the script on, not for this test.)"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "private_names.py"
SPEC = importlib.util.spec_from_file_location("ci_private_names", SCRIPT)
private_names = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = private_names  # its dataclasses look their module up there
SPEC.loader.exec_module(private_names)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def findings(root: Path, files: dict[str, str]) -> dict[tuple[str, int], str]:
    """(path, line) -> what was found there (several findings joined by " | "), for the tree."""
    write(root, files)
    found: dict[tuple[str, int], str] = {}
    for path, line, what in private_names.check(root)[0]:
        key = (path.as_posix(), line)
        found[key] = f"{found[key]} | {what}" if key in found else what
    return found


def test_private_imports_from_third_party_packages_are_reported(tmp_path):
    found = findings(tmp_path, {"api/__init__.py": "", "api/fast.py": """
        from quart.helpers import _split_blueprint_path
        from werkzeug._internal import get_logger
        import openai._base_client
        import werkzeug.routing as routing
        from quart import Quart, __version__
        import _pytest.fixtures
        """})
    assert set(found) == {("api/fast.py", 1), ("api/fast.py", 2), ("api/fast.py", 3), ("api/fast.py", 6)}
    assert "_split_blueprint_path" in found["api/fast.py", 1] and "quart.helpers" in found["api/fast.py", 1]
    assert "werkzeug._internal" in found["api/fast.py", 2]
    assert "openai._base_client" in found["api/fast.py", 3]


def test_private_imports_from_the_project_and_the_standard_library_are_not(tmp_path):
    found = findings(tmp_path, {
        "api/__init__.py": "",
        "api/_internal.py": "_TOKEN = 1\n",
        "helpers.py": "def _thing():\n    pass\n",
        "api/views.py": """
            from api._internal import _TOKEN
            from helpers import _thing
            from . import _internal
            from ._internal import _TOKEN as token
            import _thread
            from os import _exit
            """})
    assert found == {}


def test_private_attributes_the_project_does_not_define_are_reported(tmp_path):
    found = findings(tmp_path, {"services/__init__.py": "", "services/llm.py": """
        import asyncio

        from quart import request


        class Llm:
            def __init__(self, n):
                self._slots = asyncio.Semaphore(n)

            def busy(self):
                return self._slots._value

            def body(self, answer):
                return answer._content, getattr(answer, "_raw")
        """})
    assert set(found) == {("services/llm.py", 11), ("services/llm.py", 14)}
    assert "self._slots._value" in found["services/llm.py", 11] and "|" not in found["services/llm.py", 11]
    assert "answer._content" in found["services/llm.py", 14] and '"_raw"' in found["services/llm.py", 14]


def test_private_names_through_a_third_party_import_are_reported_even_when_we_define_the_name(tmp_path):
    found = findings(tmp_path, {"app.py": """
        import quart.helpers
        from quart import g, request


        def _split_blueprint_path(name):
            return []


        def handler():
            req, request_g = request._get_current_object(), g._get_current_object()
            return quart.helpers._split_blueprint_path("a.b"), getattr(quart.helpers, "_split_blueprint_path")
        """})
    assert set(found) == {("app.py", 10), ("app.py", 11)}
    assert "request._get_current_object" in found["app.py", 10] and "g._get_current_object" in found["app.py", 10]
    assert found["app.py", 11].count("_split_blueprint_path") == 2 and "third-party quart" in found["app.py", 11]


def test_private_keyword_arguments_that_are_not_our_parameters_are_reported(tmp_path):
    found = findings(tmp_path, {"providers/__init__.py": "", "providers/waddleai.py": """
        from dataclasses import dataclass

        import openai


        @dataclass
        class Options:
            _retries: int = 0


        def connect(url, *, _timeout=1.0):
            return url


        def client(key):
            connect("x", _timeout=2.0)
            Options(_retries=3)
            return openai.AsyncOpenAI(
                api_key=key,
                _enforce_credentials=False,
            )
        """})
    assert set(found) == {("providers/waddleai.py", 20)}
    assert "_enforce_credentials=" in found["providers/waddleai.py", 20]


def test_private_names_set_in_a_subclass_of_a_third_party_class_are_reported(tmp_path):
    found = findings(tmp_path, {"api/__init__.py": "", "api/route_cache.py": """
        from pydantic import BaseModel, field_validator
        from quart.routing import QuartMap


        class RouteMap(QuartMap):
            _cache = {}

            def __init__(self, matcher):
                super().__init__()
                for rule in self._rules:
                    matcher.add(rule)
                self._matcher = matcher
                self.matcher = matcher

            def _match(self, path):
                return path


        class CountingMap(RouteMap):
            def __init__(self, matcher):
                super().__init__(matcher)
                self._count = 0


        class Query(BaseModel):
            since: str

            @field_validator("since")
            @classmethod
            def _date(cls, value):
                return value
        """, "tests/test_route_cache.py": """
        from api.route_cache import RouteMap


        def test_matcher():
            assert RouteMap(None)._matcher is None
        """})
    assert set(found) == {("api/route_cache.py", 6), ("api/route_cache.py", 10), ("api/route_cache.py", 12),
                          ("api/route_cache.py", 15), ("api/route_cache.py", 22), ("tests/test_route_cache.py", 5)}
    assert "self._matcher" in found["api/route_cache.py", 12] and "quart.routing.QuartMap" in found["api/route_cache.py", 12]
    assert "self._rules" in found["api/route_cache.py", 10]
    assert "_match" in found["api/route_cache.py", 15] and "_cache" in found["api/route_cache.py", 6]
    assert "CountingMap" in found["api/route_cache.py", 22] and "through RouteMap" in found["api/route_cache.py", 22]
    assert "_matcher" in found["tests/test_route_cache.py", 5]


CLEAN = {
    "services/__init__.py": "",
    "services/metrics.py": """
        _CACHE = {}
        _reported = None


        def _reset():
            global _state
            _state = None
        """,
    "services/work.py": """
        import os
        import sys
        from collections import namedtuple

        from services import metrics

        Point = namedtuple("Point", "x y")


        class Queue:
            __slots__ = ("_items", "_spare", "name")
            _limit = 10

            def __init__(self, _clock=None):
                self._items = []

            def _wake(self):
                return len(self._items) < self._limit

            def __repr__(self):
                return f"{self.__class__.__name__}({self.__dict__!r})"


        def run(queue, other, p):
            queue._wake()
            other._items.append(Queue._limit), other._spare
            p = p._replace(x=1)
            p._asdict(), Point._fields, Point._make([1, 2])
            metrics._CACHE.clear(), metrics._reset(), metrics._state, metrics._reported
            frame = sys._getframe()
            getattr(os, "_exit")
            os._exit(0)
        """,
    "tests/test_work.py": """
        from services.work import Queue


        def test_wake():
            queue = Queue(_clock=None)
            queue._attempts = 0
            assert queue._wake() and queue._attempts == 0 and queue._clock is None
        """,
}


def test_own_private_names_stdlib_module_privates_and_the_namedtuple_api_are_not_reported(tmp_path):
    assert findings(tmp_path, CLEAN) == {}


def test_a_clean_tree_exits_0_with_a_one_line_summary(tmp_path, capsys):
    write(tmp_path, CLEAN)
    assert private_names.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "4 files scanned" in out


def test_findings_exit_1_as_path_line_lines(tmp_path):
    write(tmp_path, {"api/__init__.py": "", "api/fast.py": "import os\nfrom quart.helpers import _split_blueprint_path\n"})
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout.splitlines()[0].startswith("api/fast.py:2: ")
    assert len(run.stdout.splitlines()) == 1


def test_virtualenvs_and_build_directories_are_not_scanned(tmp_path):
    private = "from quart.helpers import _split_blueprint_path\n"
    write(tmp_path, {"app.py": "import os\n", ".venv/lib/quart/x.py": private, "venv/y.py": private,
                     "node_modules/z.py": private, "build/lib/w.py": private})
    found, scanned = private_names.check(tmp_path)
    assert found == [] and scanned == 1


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_in_a_git_checkout_the_tracked_files_are_scanned(tmp_path):
    write(tmp_path, {"app.py": "import os\n", "scratch.py": "from quart.helpers import _split_blueprint_path\n",
                     "build/gen.py": "import werkzeug._internal\n"})
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "app.py"], check=True)
    subprocess.run(git + ["add", "-f", "build/gen.py"], check=True)
    found, scanned = private_names.check(tmp_path)
    assert scanned == 2 and [(p.as_posix(), line) for p, line, _ in found] == [("build/gen.py", 1)]
