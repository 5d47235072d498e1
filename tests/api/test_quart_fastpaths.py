"""api/quart_fastpaths.py: the same answers as Quart's own lookups, computed once."""

from __future__ import annotations

import threading

import pytest
from quart import Blueprint, Quart, request

from api.quart_fastpaths import App


def nested_app(cls: type[Quart]) -> Quart:
    """Hooks on the app, a blueprint and a nested blueprint; each records that it ran."""
    app = cls(__name__)
    outer, inner = Blueprint("outer", __name__), Blueprint("inner", __name__)
    ran: list[str] = []
    app.config["RAN"] = ran

    @app.get("/top")
    async def top() -> dict:
        return {"blueprints": request.blueprints}

    @outer.get("/o")
    async def in_outer() -> dict:
        return {"blueprints": request.blueprints}

    @inner.get("/i")
    async def in_inner() -> dict:
        return {"blueprints": request.blueprints}

    for name, scope in (("app", app), ("outer", outer), ("inner", inner)):
        async def before(name: str = name) -> None:
            ran.append(f"before:{name}")

        async def after(response, name: str = name):  # type: ignore[no-untyped-def]
            ran.append(f"after:{name}")
            return response

        def sync_teardown(exc, name: str = name) -> None:  # a sync hook: Quart runs it in a thread
            ran.append(f"teardown:{name}:{threading.current_thread() is threading.main_thread()}")

        scope.before_request(before)
        scope.after_request(after)
        scope.teardown_request(sync_teardown)
    outer.register_blueprint(inner, url_prefix="/in")
    app.register_blueprint(outer, url_prefix="/out")
    return app


@pytest.mark.parametrize("path", ["/top", "/out/o", "/out/in/i", "/missing"])
async def test_blueprints_and_hooks_run_as_with_quarts_own_request_and_app(path):
    seen = {}
    for cls in (Quart, App):
        app = nested_app(cls)
        response = await app.test_client().get(path)
        body = await response.get_json() if response.status_code == 200 else None
        seen[cls] = (response.status_code, body, list(app.config["RAN"]))
    assert seen[App] == seen[Quart]
    assert seen[App][0] == (404 if path == "/missing" else 200)


async def test_nested_blueprints_are_named_innermost_first():
    response = await nested_app(App).test_client().get("/out/in/i")
    assert (await response.get_json())["blueprints"] == ["outer.inner", "outer"]


async def test_ensure_async_returns_a_coroutine_function_itself_and_wraps_a_sync_one_that_still_runs():
    app = App(__name__)

    async def coroutine_function() -> int:
        return 1

    def plain() -> int:
        return 2

    assert app.ensure_async(coroutine_function) is coroutine_function
    wrapped = app.ensure_async(plain)
    assert wrapped is not plain
    async with app.app_context():
        assert await wrapped() == 2
