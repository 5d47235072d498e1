"""api/route_cache.py: fixed-path matches remembered; every other answer still werkzeug's."""

from __future__ import annotations

import gc

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Rule
from werkzeug.routing.exceptions import RequestRedirect

from api import route_cache
from api.route_cache import RouteMap
from tests.support import make_settings, running_app


def route_map() -> RouteMap:
    return RouteMap([
        Rule("/health", endpoint="health", methods=["GET"]),
        Rule("/api/v1/ai/interaction", endpoint="interaction", methods=["POST"]),
        Rule("/items/", endpoint="items", methods=["GET"]),
        Rule("/items/<int:item_id>", endpoint="item", methods=["GET"]),
        Rule("/page", endpoint="page", methods=["GET"], defaults={"n": 1}),
    ])


def match(rmap: RouteMap, path: str, method: str = "GET") -> tuple[str, dict]:
    return rmap.bind("localhost").match(path, method=method)


def test_a_fixed_path_matches_the_same_rule_every_time_without_cyclic_garbage():
    rmap = route_map()
    assert match(rmap, "/health") == ("health", {})
    gc.collect()
    gc.disable()
    try:
        for _ in range(500):
            assert match(rmap, "/health") == ("health", {})
            assert match(rmap, "/api/v1/ai/interaction", "POST") == ("interaction", {})
        left = gc.collect()
    finally:
        gc.enable()
    # werkzeug's own matcher leaves ~8 objects in reference cycles per call: 8,000 here.
    assert left < 100


def test_plain_werkzeug_matching_leaves_cyclic_garbage_that_the_cache_avoids():
    """The cause the cache removes, measured the same way on werkzeug's plain map."""
    from werkzeug.routing import Map

    plain = Map([Rule("/health", endpoint="health", methods=["GET"])])
    plain.bind("localhost").match("/health")
    gc.collect()
    gc.disable()
    try:
        for _ in range(500):
            plain.bind("localhost").match("/health")
        left = gc.collect()
    finally:
        gc.enable()
    assert left >= 500


def test_defaults_come_back_as_a_new_dict_each_time():
    rmap = route_map()
    first = match(rmap, "/page")
    first[1]["n"] = 99  # a caller (a url_value_preprocessor) may change the values it got
    assert match(rmap, "/page") == ("page", {"n": 1})


def test_rules_with_converters_are_matched_by_werkzeug_every_time():
    rmap = route_map()
    assert match(rmap, "/items/7") == ("item", {"item_id": 7})
    assert match(rmap, "/items/8") == ("item", {"item_id": 8})
    with pytest.raises(NotFound):
        match(rmap, "/items/x")
    assert rmap._matcher._known.keys() == set()


def test_failures_are_never_cached_and_answer_as_before():
    rmap = route_map()
    assert match(rmap, "/health") == ("health", {})
    with pytest.raises(MethodNotAllowed):
        match(rmap, "/health", "POST")
    with pytest.raises(RequestRedirect):
        match(rmap, "/items")  # strict slashes: a redirect to /items/
    for i in range(2000):
        with pytest.raises(NotFound):
            match(rmap, f"/nope/{i}")
    assert set(rmap._matcher._known) == {("", "/health", "GET", False)}


def test_the_cache_is_capped(monkeypatch):
    monkeypatch.setattr(route_cache, "MAX_ENTRIES", 2)
    rmap = route_map()
    for path in ("/health", "/items/", "/page"):
        match(rmap, path)
    assert len(rmap._matcher._known) == 2
    assert match(rmap, "/page") == ("page", {"n": 1})  # still answered, through werkzeug


def test_adding_a_rule_forgets_what_was_remembered():
    rmap = route_map()
    match(rmap, "/health")
    rmap.add(Rule("/later", endpoint="later", methods=["GET"]))
    assert rmap._matcher._known == {}
    assert match(rmap, "/later") == ("later", {})


def test_the_app_routes_through_the_caching_map():
    with running_app(make_settings()) as app:
        assert isinstance(app.app.url_map, RouteMap)
        for _ in range(3):
            assert app.http.get("/health").status_code == 200
        assert app.http.post("/health").status_code == 405
        assert app.http.get("/no-such-path").status_code == 404
        assert ("", "/health", "GET", False) in app.app.url_map._matcher._known
