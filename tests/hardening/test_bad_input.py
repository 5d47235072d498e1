"""Bad input on every endpoint family: 4xx naming the field, never a 5xx, never an internal detail.

The interaction endpoint, the OpenAI-compatible endpoint and the admin endpoints get deep
nesting, huge strings, invalid UTF-8, wrong content types, duplicated keys, numbers where strings
belong, NUL characters, NaN/Infinity and out-of-range ids; then hypothesis throws arbitrary JSON
and arbitrary bytes at the interaction endpoint, and every accepted body is followed to its
outcome (the books balance). The PostgreSQL test at the end covers what only the store could
choke on (NUL, ids beyond its integer), which used to answer 503 and mark the store down.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from tests.web.admin_support import ADMIN_KEY, AUTH as ADMIN
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_router import FakeRouter
from tests.hardening.support import Ledger, assert_openai_error, assert_service_error
from tests.server_thread import ServerThread
from tests.storage.conftest import pg_settings, wait_ready
from tests.support import interaction_body, make_settings, running_app

INTERACTION = "/api/v1/ai/interaction"
COMPLETIONS = "/v1/chat/completions"
OPENAI_KEY = "bad-input-openai-key"
OPENAI = {"Authorization": f"Bearer {OPENAI_KEY}"}
JSON = {"Content-Type": "application/json"}
STRING_FIELDS = ["session_id", "user_id", "entity_id", "platform", "username", "display_name",
                 "message_type", "message_content", "message_id", "channel_id", "execution_id"]
INT32_MAX = 2_147_483_647


@pytest.fixture(scope="module")
def app() -> Iterator[Any]:
    """One app (memory mode) for the module, with its own fakes: many requests, one start-up."""
    ollama, router = FakeOllama(), FakeRouter().start()
    server = ServerThread(ollama).start()
    ollama.url = server.url
    settings = make_settings(ollama=ollama, router=router, admin_api_keys=ADMIN_KEY, valid_api_keys=OPENAI_KEY,
                             completions_rate_per_min=0, max_message_chars=2000)
    try:
        with running_app(settings) as handle:
            yield handle
    finally:
        ollama.release()
        server.stop()
        router.stop()


def post_raw(app: Any, path: str, content: bytes, headers: dict[str, str] | None = None,
             method: str = "POST") -> httpx.Response:
    headers = {**JSON, **(headers or {})}
    if len(content) > 60_000:  # a fresh connection: a 413 closes it without reading the body
        return httpx.request(method, app.url + path, content=content, headers=headers, timeout=10)
    return app.http.request(method, path, content=content, headers=headers)


def valid_raw(**changes: Any) -> str:
    """A valid interaction body as JSON text, with `changes` appended (later keys win in JSON)."""
    body = json.dumps(interaction_body("just chatting"))
    extra = "".join(f', "{k}": {v}' for k, v in changes.items())
    return body[:-1] + extra + "}"


# --- the interaction endpoint -----------------------------------------------------------------
@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize("value", ["12345", "1.5", "true", "[\"a\"]", "{\"a\": 1}", "\"a\\u0000b\""],
                         ids=["int", "float", "bool", "list", "object", "nul"])
def test_a_wrong_type_or_a_nul_in_any_string_field_is_a_400_naming_it(app, field, value):
    response = post_raw(app, INTERACTION, valid_raw(**{field: value}).encode())
    assert response.status_code == 400, response.text
    assert_service_error(response, field)


@pytest.mark.parametrize("value,ok", [("0", False), ("-3", False), ("1", True), (str(INT32_MAX), True),
                                      (str(INT32_MAX + 1), False), ("1" + "0" * 40, False), ("\"7\"", False),
                                      ("7.0", False), ("1e3", False), ("null", True)])
def test_community_id_must_fit_the_stores_integer(app, value, ok):
    response = post_raw(app, INTERACTION, valid_raw(community_id=value).encode())
    if ok:
        assert response.status_code == 202, response.text
    else:
        assert response.status_code == 400, response.text
        assert_service_error(response, "community_id")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", "{\"x\": {\"y\": -1e400}}"])
def test_nan_or_infinity_in_metadata_is_a_400_not_an_undeliverable_reply(app, value):
    response = post_raw(app, INTERACTION, valid_raw(metadata="{\"n\": %s}" % value).encode())
    assert response.status_code == 400, response.text
    assert_service_error(response, "metadata")


@pytest.mark.parametrize("metadata", ['{"a\\u0000": 1}', '{"a": ["b\\u0000"]}', '{"a": {"b": "\\u0000"}}'])
def test_nul_anywhere_in_metadata_is_a_400(app, metadata):
    response = post_raw(app, INTERACTION, valid_raw(metadata=metadata).encode())
    assert response.status_code == 400, response.text
    assert_service_error(response, "metadata")


def test_a_literal_backslash_u0000_in_metadata_is_just_text(app):
    response = post_raw(app, INTERACTION, valid_raw(metadata='{"note": "\\\\u0000 is how JSON spells NUL"}').encode())
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("depth", [300, 5000, 20000])
def test_deep_nesting_is_a_400_naming_the_body(app, depth):
    raw = valid_raw(metadata='{"deep": ' + "[" * depth + "]" * depth + "}")
    response = post_raw(app, INTERACTION, raw.encode())
    assert response.status_code in (400, 413), response.text
    assert_service_error(response, *(["body"] if response.status_code == 400 else []))


def test_moderate_nesting_in_metadata_is_accepted_and_echoed(app):
    nested: Any = "leaf"
    for _ in range(60):
        nested = {"n": nested}
    response = post_raw(app, INTERACTION, valid_raw(metadata=json.dumps(nested)).encode())
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("size,status,field", [(2001, 400, "message_content"), (60_000, 400, "message_content"),
                                               (70_000, 413, None)])
def test_huge_strings(app, size, status, field):
    response = post_raw(app, INTERACTION, valid_raw(message_content=json.dumps("x" * size)).encode())
    assert response.status_code == status, response.text[:300]
    assert_service_error(response, *([field] if field else []))


@pytest.mark.parametrize("raw", [
    b'{"session_id": "\xff\xfe"}', b"\xc0\xaf", b'{"message_content": "\xed\xa0\x80"}',  # overlong, surrogate
    b'{"message_content": "caf\xe9"}', b"\x00\x00\x00{", b'\xef\xbb\xbf{"a": 1}',
])
def test_invalid_utf8_is_a_400(app, raw):
    response = post_raw(app, INTERACTION, raw)
    assert response.status_code == 400, response.text
    assert_service_error(response)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "text/html; charset=utf-8"])
def test_wrong_content_types_are_a_415_naming_the_header(app, content_type):
    response = post_raw(app, INTERACTION, valid_raw().encode(), {"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert_service_error(response, "Content-Type")


def test_duplicated_keys_last_one_wins_and_is_validated(app):
    bad = json.dumps(interaction_body("hello"))[:-1] + ', "user_id": 42}'
    response = post_raw(app, INTERACTION, bad.encode())
    assert response.status_code == 400
    assert_service_error(response, "user_id")
    good = '{"user_id": 42, ' + json.dumps(interaction_body("hello"))[1:]
    assert post_raw(app, INTERACTION, good.encode()).status_code == 202


# --- the OpenAI-compatible endpoint -----------------------------------------------------------
def completion(**changes: Any) -> str:
    body = json.dumps({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    return body[:-1] + "".join(f', "{k}": {v}' for k, v in changes.items()) + "}"


@pytest.mark.parametrize("raw,param", [
    (completion(model="5"), "model"),
    (completion(messages='[{"role": "user", "content": 5}]'), "messages[0].content"),
    (completion(messages='[{"role": 5, "content": "hi"}]'), "messages[0].role"),
    (completion(messages='"hi"'), "messages"),
    (completion(messages="5"), "messages"),  # duplicated key: the last one wins
    (completion(temperature="NaN"), "temperature"),
    (completion(temperature="Infinity"), "temperature"),
    (completion(max_tokens="1e999"), "max_tokens"),
    (completion(top_p='"high"'), "top_p"),
    (completion(n="3"), "n"),
    (completion(stream='"yes please"'), "stream"),
    (completion(messages='[{"role": "user", "content": [{"type": "image_url"}]}]'), "messages[0].content"),
    (completion(messages='[{"role": "user", "content": ' + "[" * 3000 + "]" * 3000 + "}]"), None),
])
def test_openai_endpoint_names_the_bad_param(app, raw, param):
    response = post_raw(app, COMPLETIONS, raw.encode(), OPENAI)
    assert response.status_code == 400, response.text
    assert_openai_error(response, param)


@pytest.mark.parametrize("raw,status", [
    (b"\xff\xfe{}", 400), (b'{"messages": "\xed\xa0\x80"}', 400), (b"", 400), (b"[]", 400), (b"null", 400),
    (completion(messages=json.dumps([{"role": "user", "content": "x" * 70_000}])).encode(), 413),
])
def test_openai_endpoint_bad_bodies(app, raw, status):
    response = post_raw(app, COMPLETIONS, raw, OPENAI)
    assert response.status_code == status, response.text[:300]
    assert_openai_error(response)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_openai_endpoint_content_types_never_fail_on_our_side(app, content_type):
    """A valid JSON body is answered whatever the declared type (OpenAI clients always send
    JSON); a form body is not JSON and is a 400 in OpenAI's shape."""
    response = post_raw(app, COMPLETIONS, completion().encode(), {**OPENAI, "Content-Type": content_type})
    assert response.status_code == 200, response.text
    form = post_raw(app, COMPLETIONS, b"model=llama3.2&messages=hi", {**OPENAI, "Content-Type": content_type})
    assert form.status_code == 400
    assert_openai_error(form)


@pytest.mark.parametrize("path", ["/v1/models/llama%0A", "/v1/models/a%0Ab/c%0D", "/api/v1/ai/models/x%0A",
                                  "/v1/no%0Asuch", "/v1/models%0A"])
def test_openai_urls_with_line_breaks_get_an_openai_shaped_404(app, path):
    """Found by schemathesis: Werkzeug's `path` converter stops at a newline, so these fell through
    to the service's own 404 shape, which OpenAI clients cannot read."""
    response = app.http.get(path, headers=OPENAI)
    assert response.status_code == 404, response.text
    assert_openai_error(response)


# --- the admin endpoints ----------------------------------------------------------------------
@pytest.mark.parametrize("raw,field", [
    ('{"model": 5}', "model"), ('{"temperature": "hot"}', "temperature"), ('{"temperature": NaN}', "temperature"),
    ('{"max_tokens": 1e999}', "max_tokens"), ('{"system_prompt": "a\\u0000b"}', "system_prompt"),
    ('{"model": "a\\u0000"}', "model"), ('{"triggers": {"greetings": ["hi\\u0000"]}}', "triggers.greetings.0"),
    ('{"triggers": {"bot_name": 7}}', "triggers.bot_name"), ('{"model": "a", "model": 5}', "model"),
    ('{"user_cooldown_s": Infinity}', "user_cooldown_s"), ('{"unknown": 1}', "unknown"),
    ('{"base_url": "ftp://x"}', "base_url"),
])
def test_admin_config_put_names_the_bad_field(app, raw, field):
    response = post_raw(app, "/api/v1/ai/config", raw.encode(), ADMIN, method="PUT")
    assert response.status_code == 400, response.text
    assert_service_error(response, field)


@pytest.mark.parametrize("raw,status", [
    (b"\xff{", 400), (b"[1]", 400), (b'{"system_prompt": "' + b"x" * 70_000 + b'"}', 413),
    (b'{"triggers": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
])
def test_admin_config_put_bad_bodies(app, raw, status):
    response = post_raw(app, "/api/v1/ai/config", raw, ADMIN, method="PUT")
    assert response.status_code == status, response.text[:300]
    assert_service_error(response)


@pytest.mark.parametrize("path,field", [
    ("/api/v1/ai/config?community_id=abc", "community_id"),
    (f"/api/v1/ai/config?community_id={INT32_MAX + 1}", "community_id"),
    ("/api/v1/ai/config?community_id=-1", "community_id"),
    (f"/api/v1/ai/usage?community_id={10 ** 30}", "community_id"),
    ("/api/v1/ai/usage?since=yesterday", "since"),
    ("/api/v1/ai/usage?since=2024-13-45", "since"),
])
def test_admin_queries_name_the_bad_parameter(app, path, field):
    response = app.http.get(path, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert_service_error(response, field)


@pytest.mark.parametrize("path,field", [("/api/v1/ai/context/twitch/a%00b", "user_id"),
                                        ("/api/v1/ai/context/tw%00itch/u", "platform"),
                                        ("/api/v1/ai/context/twitch/" + "u" * 300, "user_id")])
def test_admin_erase_names_the_bad_path_segment(app, path, field):
    response = app.http.delete(path, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert_service_error(response, field)


# --- arbitrary input, by hypothesis -----------------------------------------------------------
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
FIELD_VALUES = st.one_of(JSON_VALUES, st.sampled_from(["twitch", "discord", "hello there", "what?", "", "x" * 300]))
FIELDS = st.sampled_from(STRING_FIELDS + ["community_id", "metadata", "surprise"])
HYP = hyp_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code == 202:
        assert response.json()["success"] is True
    else:
        assert response.status_code in (400, 413, 415), response.text[:300]
        assert_service_error(response)


@pytest.fixture(scope="module")
def fuzz_books(app) -> tuple[Ledger, list[int]]:
    """The books before the fuzz tests, and the count of their 202s (checked by the last one)."""
    return Ledger(app.http), [0]


@HYP
@given(body=JSON_VALUES)
def test_arbitrary_json_is_202_or_a_documented_4xx(app, fuzz_books, body):
    response = post_raw(app, INTERACTION, json.dumps(body).encode())
    check_answer(response)
    fuzz_books[1][0] += response.status_code == 202


@HYP
@given(changes=st.dictionaries(FIELDS, FIELD_VALUES, min_size=1, max_size=4), drop=st.sets(FIELDS, max_size=2))
def test_valid_bodies_with_fields_replaced_are_202_or_a_400_naming_a_field(app, fuzz_books, changes, drop):
    body = {k: v for k, v in interaction_body("hello there").items() if k not in drop}
    body.update(changes)
    response = post_raw(app, INTERACTION, json.dumps(body).encode())
    check_answer(response)
    if response.status_code == 400:
        details = response.json()["error"]["details"]
        assert details and all(d["field"] for d in details)
    fuzz_books[1][0] += response.status_code == 202


@HYP
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_documented_4xx(app, fuzz_books, raw):
    response = post_raw(app, INTERACTION, raw)
    check_answer(response)
    fuzz_books[1][0] += response.status_code == 202


def test_every_fuzzed_acceptance_ended_in_exactly_one_outcome(app, fuzz_books):
    ledger, accepted = fuzz_books
    assert accepted[0] > 0
    ledger.settled(accepted[0], timeout=60)


# --- PostgreSQL mode: the store must never see what it cannot hold -------------------------------
def test_in_postgresql_mode_bad_values_are_a_400_not_a_503_and_the_store_stays_up(pg, fake_ollama, fake_router):
    settings = pg_settings(pg, fake_ollama, fake_router, admin_api_keys=ADMIN_KEY)
    with running_app(settings) as app:
        wait_ready(app)

        def store_errors() -> float:
            text = app.http.get("/metrics").text
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("ai_store_errors_total{") and "probe" not in line)

        before, ledger = store_errors(), Ledger(app.http)
        cases = [
            (INTERACTION, "POST", json.dumps(interaction_body("hello \u0000 there")), "message_content"),
            (INTERACTION, "POST", json.dumps(interaction_body("hello", user_id="a\u0000b")), "user_id"),
            (INTERACTION, "POST", json.dumps(interaction_body("hello", metadata={"k": "\u0000"})), "metadata"),
            (INTERACTION, "POST", json.dumps(interaction_body("hello", community_id=2 ** 40)), "community_id"),
            ("/api/v1/ai/config", "PUT", '{"system_prompt": "a\\u0000b"}', "system_prompt"),
            (f"/api/v1/ai/config?community_id={2 ** 40}", "PUT", '{"model": "m"}', "community_id"),
        ]
        for path, method, raw, field in cases:
            response = post_raw(app, path, raw.encode(), ADMIN, method=method)
            assert response.status_code == 400, (path, raw, response.text)
            assert_service_error(response, field)
        for path, field in ((f"/api/v1/ai/config?community_id={2 ** 40}", "community_id"),
                            (f"/api/v1/ai/usage?community_id={2 ** 40}", "community_id")):
            response = app.http.get(path, headers=ADMIN)
            assert response.status_code == 400, response.text
            assert_service_error(response, field)
        response = app.http.delete("/api/v1/ai/context/twitch/a%00b", headers=ADMIN)
        assert response.status_code == 400 and assert_service_error(response, "user_id")
        assert store_errors() == before, "bad input reached PostgreSQL"
        assert app.http.get("/ready").status_code == 200
        # …and good input still goes through, end to end.
        ok = post_raw(app, INTERACTION, json.dumps(interaction_body("hello", community_id=INT32_MAX)).encode())
        assert ok.status_code == 202, ok.text
        fake_router.wait_for_replies(1)
        assert ledger.settled(1).outcomes == {"replied": 1}
        assert store_errors() == before
