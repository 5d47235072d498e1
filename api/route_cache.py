"""The app's URL map: werkzeug's route matcher, with the answers for fixed paths remembered.

werkzeug matches a path by walking its state machine with a recursive closure built per call; the
closure refers to itself, so every request left ~8 objects that only the cyclic garbage collector
frees (measured with gc.DEBUG_SAVEALL: `StateMachineMatcher.match.<locals>._match`, its cells, a set
and a tuple per request). At a few hundred requests per second those made the collector run every
few seconds, each run pausing the event loop for milliseconds (BENCHMARKS.md).

Our routes are fixed paths, so the answer for (host part, path, method, websocket) never changes once
the rules are in: a successful match of a rule without converters is kept and returned again without
walking the machine (values: the rule's defaults, a new dict each time, as werkzeug returns).
Everything else (404, 405, redirects, rules with converters) goes through werkzeug every time, so
unknown paths cannot grow the cache; it is also capped, and cleared when a rule is added.
"""

from __future__ import annotations

from typing import Any

from quart.routing import QuartMap
from werkzeug.routing import Rule
from werkzeug.routing.matcher import StateMachineMatcher

MAX_ENTRIES = 1024


class CachingMatcher(StateMachineMatcher):
    def __init__(self, merge_slashes: bool) -> None:
        super().__init__(merge_slashes)
        self._known: dict[tuple[str, str, str, bool], Rule] = {}

    def add(self, rule: Rule) -> None:
        self._known.clear()
        super().add(rule)

    def update(self) -> None:
        self._known.clear()
        super().update()

    def match(self, domain: str, path: str, method: str, websocket: bool) -> tuple[Rule, Any]:
        key = (domain, path, method, websocket)
        rule = self._known.get(key)
        if rule is not None:
            return rule, dict(rule.defaults) if rule.defaults else {}
        rule, values = super().match(domain, path, method, websocket)
        if not rule._converters and len(self._known) < MAX_ENTRIES:
            self._known[key] = rule
        return rule, values


class RouteMap(QuartMap):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        matcher = CachingMatcher(self.merge_slashes)
        for rule in self._rules:  # none yet when Quart creates the map; kept correct regardless
            matcher.add(rule)
        self._matcher = matcher
