"""Two per-request lookups of Quart done once instead of on every request.

- `request.blueprints` (the matched endpoint's blueprint and its parents) is read three times per
  request by Quart's dispatch (before-request hooks, after-request hooks, teardown), each time
  re-deriving it from the endpoint string through three properties and an import statement.
  `AppRequest` keeps Quart's own answer per endpoint: endpoints are the app's routes, a fixed set.
- `app.ensure_async(func)` is asked for every hook and view of every request, and answers through
  `inspect` (unwrapping, type checks). For a plain `async def` function the answer is the function
  itself, told by its code flags; anything else goes through Quart's own check.
"""

from __future__ import annotations

import inspect
from functools import cache
from types import FunctionType
from typing import Any, Callable

from quart import Quart
from quart.helpers import _split_blueprint_path
from quart.wrappers import Request

from api.route_cache import RouteMap


@cache
def _blueprints_of(endpoint: str) -> list[str]:
    return _split_blueprint_path(endpoint.rpartition(".")[0]) if "." in endpoint else []


class AppRequest(Request):
    @property
    def blueprints(self) -> list[str]:
        rule = self.url_rule
        return [] if rule is None else _blueprints_of(rule.endpoint)


class App(Quart):
    url_map_class = RouteMap  # werkzeug's matcher, fixed-path matches remembered (api/route_cache.py)
    request_class = AppRequest

    def ensure_async(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is FunctionType and func.__code__.co_flags & inspect.CO_COROUTINE:
            return func
        return super().ensure_async(func)
