"""schemathesis against the service's own /openapi.json (quart-schema), over every operation.

Each operation gets a bounded number of generated requests (SCHEMATHESIS_EXAMPLES, default 25 in
`make test`; `SCHEMATHESIS_EXAMPLES=300 .venv/bin/pytest tests/hardening/test_schemathesis.py` for a
longer hunt, about 3 minutes), schema-valid ones and, where the operation has a body or typed query
parameters, schema-violating ones, with the right key (one key configured for every key ring). Checks: no 5xx,
the status is documented, the body matches the documented schema (errors included: the service's
`{"success": false, "error": …}` or OpenAI's `{"error": …}`), the content type is the documented one,
and no stack trace or internal detail in any body. A second run does the same on PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hyp_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from tests.web.admin_support import FERNET_KEY
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_router import FakeRouter
from tests.hardening.support import LEAK_MARKERS, env_float
from tests.server_thread import ServerThread
from tests.storage.conftest import PgSchema, _admin, pg_settings, run_sync, wait_ready
from tests.support import make_settings, running_app

KEY = "schema-key-Ss00"  # the router, OpenAI and admin key rings all accept it
EXAMPLES = int(env_float("SCHEMATHESIS_EXAMPLES", 25))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SETTINGS = hyp_settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                        suppress_health_check=list(HealthCheck))
UNDOCUMENTED_BODY = {"/metrics"}  # Prometheus text format, not JSON


def _app(make: Any) -> Iterator[Any]:
    ollama, router = FakeOllama(), FakeRouter().start()
    server = ServerThread(ollama).start()
    ollama.url = server.url
    try:
        with running_app(make(ollama, router)) as handle:
            wait_ready(handle)
            handle.fakes = (ollama, router)
            yield handle
    finally:
        ollama.release()
        server.stop()
        router.stop()


def _keys() -> dict[str, Any]:
    return {"router_service_key": KEY, "valid_api_keys": KEY, "admin_api_keys": KEY,
            "completions_rate_per_min": 0, "config_encryption_key": FERNET_KEY, "max_queue": 100_000,
            "user_cooldown_s": 0}


@pytest.fixture(scope="module")
def memory_app() -> Iterator[Any]:
    yield from _app(lambda ollama, router: make_settings(ollama=ollama, router=router, **_keys()))


@pytest.fixture(scope="module")
def memory_schema(memory_app) -> Any:
    return schemathesis.openapi.from_url(memory_app.url + "/openapi.json")


def check_case(app: Any, case: Any) -> None:
    response = case.call(base_url=app.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    if case.path in UNDOCUMENTED_BODY:  # not JSON: quart-schema documents JSON bodies only (README)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code == 200 and response.headers["content-type"][0].startswith("text/plain")
        return
    if response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        check_stream(case, response)  # `stream: true`: SSE, which the JSON schema cannot describe
        return
    case.validate_response(response, checks=CHECKS)
    assert not LEAK_MARKERS.search(response.text), response.text[:500]
    if response.status_code >= 400:
        body = json.loads(response.text)
        if case.path.startswith("/v1/") or case.path.endswith(("/chat/completions",)) or "/models" in case.path:
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
        else:
            assert body["success"] is False and {"code", "message", "details"} <= set(body["error"]), body


def check_stream(case: Any, response: Any) -> None:
    """Every frame `data: <json>` (chunks, or an in-band error as the last one) or the final [DONE]."""
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code == 200
    raw = response.content
    assert raw.endswith(b"\n\n"), raw[-200:]
    frames = raw[:-2].split(b"\n\n")
    payloads = []
    for frame in frames:
        assert frame.startswith(b"data: ") and b"\n" not in frame, frame[:200]
        payloads.append(frame[len(b"data: "):])
    for payload in payloads[:-1]:
        assert json.loads(payload)["object"] == "chat.completion.chunk", payload[:200]
    last = payloads[-1]
    assert last == b"[DONE]" or set(json.loads(last)["error"]) == {"message", "type", "param", "code"}, last[:200]


# Every operation of /openapi.json (test_the_list_is_every_documented_operation keeps it complete).
# schemathesis' own `from_fixture(...).parametrize()` needs a pytest internal that pytest 9 dropped
# (Function._nodeid), so the operations are parametrized here and each runs its hypothesis strategy.
OPERATIONS = [
    ("POST", "/api/v1/ai/interaction"), ("POST", "/api/v1/execute"), ("GET", "/health"), ("GET", "/ready"),
    ("GET", "/api/v1/ai/status"),
    ("GET", "/metrics"), ("GET", "/api/v1/ai/config"), ("PUT", "/api/v1/ai/config"),
    ("DELETE", "/api/v1/ai/context/{platform}/{user_id}"), ("GET", "/api/v1/ai/usage"),
    ("POST", "/api/v1/ai/triggers/check"),
    ("POST", "/api/v1/ai/chat/completions"), ("GET", "/api/v1/ai/models"), ("GET", "/api/v1/ai/models/{model_id}"),
    ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/models/{model_id}"),
]
# Operations with something that can be made invalid (a JSON body, typed query parameters); the
# others (no parameters, or free-form path strings) have no negative cases to generate.
NEGATABLE = {("POST", "/api/v1/ai/interaction"), ("POST", "/api/v1/execute"), ("GET", "/api/v1/ai/config"),
             ("PUT", "/api/v1/ai/config"), ("GET", "/api/v1/ai/usage"), ("POST", "/api/v1/ai/triggers/check"),
             ("POST", "/api/v1/ai/chat/completions"), ("POST", "/v1/chat/completions")}
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if (m, p) in NEGATABLE]


def run_operation(app: Any, schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)

    @SETTINGS
    @given(case=strategy)
    def examples(case: Any) -> None:
        check_case(app, case)

    examples()


def test_the_list_is_every_documented_operation(memory_app):
    document = memory_app.http.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert documented == set(OPERATIONS)
    for method, path in OPERATIONS:  # and every one documents its answers
        assert document["paths"][path][method.lower()]["responses"] or path in UNDOCUMENTED_BODY, path


@pytest.mark.parametrize("method,path,mode", CASES)
def test_every_operation_in_memory_mode(memory_app, memory_schema, method, path, mode):
    run_operation(memory_app, memory_schema, method, path, mode)


@pytest.fixture(scope="module")
def pg_app(pg_available) -> Iterator[Any]:
    """Like the `pg` fixture (a fresh schema), for the whole module."""
    schema = PgSchema(f"aim_t_{uuid.uuid4().hex[:12]}")
    run_sync(lambda: _admin(lambda c: c.execute(f"CREATE SCHEMA {schema.name}")))
    try:
        yield from _app(lambda ollama, router: pg_settings(schema, ollama, router, **_keys()))
    finally:
        schema.terminate()
        run_sync(lambda: _admin(lambda c: c.execute(f"DROP SCHEMA {schema.name} CASCADE")))


@pytest.fixture(scope="module")
def pg_schema(pg_app) -> Any:
    return schemathesis.openapi.from_url(pg_app.url + "/openapi.json")


@pytest.mark.parametrize("method,path,mode", CASES)
def test_every_operation_in_postgresql_mode(pg_app, pg_schema, method, path, mode):
    run_operation(pg_app, pg_schema, method, path, mode)
