"""Tracing through the running app (§1, §12), with the SDK's in-memory exporter handed to the app:
one trace per interaction continuing the caller's traceparent, the expected spans and their
parents, traceparent on the LLM and router calls, GenAI attributes, the OpenAI API and execute;
and with tracing unset, nothing. The OTLP exporter itself: against a loopback collector."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from config.settings import MODULE_NAME
from observability import tracing
from tests.fakes.asgi import is_http, read_body
from tests.observability.spans import (CALLER, CALLER_SPAN_ID, CALLER_TRACE_ID, TRACEPARENT, TRACESTATE, Traced,
                                       attribute_text, hex_span, hex_trace, one, parent_id, traceparent_of)
from tests.server_thread import ServerThread
from tests.support import interaction_body, make_settings, running_app, settled
from tests.waiting import wait_until
from web.tracing import TracedRequests

KEY = "trace-key"
ACK = "POST /api/v1/ai/interaction"
INTERACTION_SPANS = {ACK, "interaction.queue_wait", "interaction.process", "interaction.decide", "chat llama3.2",
                     "router.post_reply", "POST"}


@pytest.fixture
def app(fake_ollama, fake_router, traced):
    settings = make_settings(ollama=fake_ollama, router=fake_router, valid_api_keys=KEY)
    with running_app(settings, tracer_provider=traced.provider) as handle:
        yield handle


def accept(app, message: str, headers: dict[str, str] | None = None) -> str:
    ack = app.post_interaction(interaction_body(message), headers=headers or {})
    assert ack.status_code == 202, ack.text
    return ack.json()["data"]["interaction_id"]


def interaction_trace(traced: Traced, interaction_id: str, delivered: bool = False) -> list[ReadableSpan]:
    """The finished trace of one interaction (waited for until its processing span ended, and with
    `delivered` until the outbox's post that the router accepted ended)."""
    process = traced.wait_for("interaction.process", **{"interaction.id": interaction_id})
    if delivered:
        traced.wait_for("router.post_reply", **{"interaction.id": interaction_id, "router.result": "delivered"})
    return traced.trace(process.context.trace_id)


def test_an_interaction_is_one_trace_under_the_callers_traceparent(app, traced, fake_ollama, fake_router):
    fake_ollama.reply = "Hey Viewer42, welcome in!"
    interaction_id = accept(app, "hello there, how is the stream", CALLER)
    reply = fake_router.wait_for_replies(1)[0]
    spans = interaction_trace(traced, interaction_id, delivered=True)
    assert {s.name for s in spans} == INTERACTION_SPANS and len(spans) == len(INTERACTION_SPANS)
    ack, wait, process = one(spans, ACK), one(spans, "interaction.queue_wait"), one(spans, "interaction.process")
    decide, chat = one(spans, "interaction.decide"), one(spans, "chat llama3.2")
    post_reply, attempt = one(spans, "router.post_reply"), one(spans, "POST")

    # the caller's trace continues: same trace id, the ACK's parent is the caller's span
    assert hex_trace(ack) == CALLER_TRACE_ID and parent_id(ack) == CALLER_SPAN_ID
    assert ack.kind == SpanKind.SERVER and ack.parent.is_remote
    assert ack.attributes["http.route"] == "/api/v1/ai/interaction"
    assert ack.attributes["http.response.status_code"] == 202
    assert ack.attributes["interaction.id"] == interaction_id
    # parents: the queue wait and the processing under the ACK, the steps under the processing
    assert parent_id(wait) == parent_id(process) == hex_span(ack)
    assert parent_id(decide) == parent_id(chat) == parent_id(post_reply) == hex_span(process)
    assert parent_id(attempt) == hex_span(post_reply)
    assert process.attributes["interaction.outcome"] == "replied"
    assert process.attributes["interaction.trigger"] == decide.attributes["interaction.trigger"] == "greeting"
    assert post_reply.attributes["router.result"] == "delivered" and post_reply.attributes["router.attempt"] == 1
    assert attempt.kind == chat.kind == SpanKind.CLIENT
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["url.full"] == fake_router.base_url + "/responses"

    # the upstream calls carry the trace: each names its own client span as the parent
    _, llm_headers, _ = fake_ollama.chat_requests[-1]
    assert llm_headers["traceparent"] == traceparent_of(chat)
    assert llm_headers["tracestate"] == TRACESTATE
    assert reply["headers"]["traceparent"] == traceparent_of(attempt)
    assert reply["headers"]["tracestate"] == TRACESTATE

    # OpenTelemetry's GenAI attributes on the LLM span, with the provider's token counts
    assert {k: v for k, v in chat.attributes.items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "ollama", "gen_ai.system": "ollama",
        "gen_ai.request.model": "llama3.2", "gen_ai.request.temperature": 0.7, "gen_ai.request.max_tokens": 150,
        "gen_ai.response.model": "llama3.2", "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 7,
    }
    # no chat text in any span
    text = attribute_text(spans)
    assert "how is the stream" not in text and "welcome in" not in text and "Viewer42" not in text


def test_each_interaction_is_its_own_trace_without_a_caller(app, traced, fake_router):
    first, second = accept(app, "hello one"), accept(app, "hello two")
    fake_router.wait_for_replies(2)
    one_trace = interaction_trace(traced, first, delivered=True)
    two_trace = interaction_trace(traced, second, delivered=True)
    assert hex_trace(one_trace[0]) != hex_trace(two_trace[0])
    for spans in (one_trace, two_trace):
        assert {s.name for s in spans} == INTERACTION_SPANS
        assert one(spans, ACK).parent is None  # a new trace's root


def test_a_caller_that_does_not_sample_is_followed_and_its_trace_passed_on(app, traced, fake_ollama, fake_router):
    unsampled = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-00"
    accept(app, "hello there", {"traceparent": unsampled})
    reply = fake_router.wait_for_replies(1)[0]
    wait_until(lambda: app.runtime.workers.inflight == 0)
    assert traced.trace(CALLER_TRACE_ID) == []  # the sampler (parent-based) keeps nothing of it
    for headers in (fake_ollama.chat_requests[-1][1], reply["headers"]):
        version, trace_id, span_id, flags = headers["traceparent"].split("-")
        assert (trace_id, flags) == (CALLER_TRACE_ID, "00") and span_id != CALLER_SPAN_ID


def test_a_malformed_traceparent_starts_a_new_trace(app, traced, fake_router):
    ack = app.post_interaction(interaction_body("hello there"), headers={"traceparent": "00-nothex-zz-01"})
    assert ack.status_code == 202
    spans = interaction_trace(traced, ack.json()["data"]["interaction_id"], delivered=True)
    assert one(spans, ACK).parent is None and {s.name for s in spans} == INTERACTION_SPANS
    fake_router.wait_for_replies(1)


def test_an_ignored_interaction_ends_at_the_decision(app, traced, fake_ollama):
    interaction_id = accept(app, "just chatting about the game", CALLER)
    spans = interaction_trace(traced, interaction_id)
    assert {s.name for s in spans} == {ACK, "interaction.queue_wait", "interaction.process", "interaction.decide"}
    assert one(spans, "interaction.process").attributes["interaction.outcome"] == "ignored"
    assert one(spans, "interaction.decide").attributes["interaction.trigger"] == "none"
    assert fake_ollama.chat_requests == []


def test_a_failed_llm_call_is_an_error_span_and_the_fallback_still_one_trace(app, traced, fake_ollama, fake_router):
    fake_ollama.fail_status = 500
    interaction_id = accept(app, "hello there", CALLER)
    fake_router.wait_for_replies(1)
    spans = interaction_trace(traced, interaction_id, delivered=True)
    chat = one(spans, "chat llama3.2")
    assert chat.status.status_code == StatusCode.ERROR
    assert chat.attributes["error.type"] == "bad_status"
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    assert one(spans, "interaction.process").attributes["interaction.outcome"] == "fallback"
    assert hex_trace(chat) == CALLER_TRACE_ID


def test_a_retried_router_post_is_one_client_span_per_attempt(app, traced, fake_router):
    fake_router.fail_times, fake_router.fail_status = 1, 503
    interaction_id = accept(app, "hello there", CALLER)
    fake_router.wait_for_replies(1)
    spans = interaction_trace(traced, interaction_id, delivered=True)
    process = one(spans, "interaction.process")
    # the outbox makes each attempt apart (a retry holds no sender): one post_reply span per attempt
    posts = sorted((s for s in spans if s.name == "router.post_reply"), key=lambda s: s.start_time)
    attempts = sorted((s for s in spans if s.name == "POST"), key=lambda s: s.start_time)
    assert [parent_id(s) for s in posts] == [hex_span(process)] * 2
    assert [p.attributes["router.result"] for p in posts] == ["retry", "delivered"]
    assert [parent_id(s) for s in attempts] == [hex_span(p) for p in posts]
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503, 200]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert "http.request.resend_count" not in attempts[0].attributes
    assert attempts[1].attributes["http.request.resend_count"] == 1
    assert [a["headers"]["traceparent"] for a in fake_router.attempts] == [traceparent_of(s) for s in attempts]


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1/ai"])
def test_a_completion_is_traced_with_genai_attributes(app, traced, fake_ollama, prefix):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 23, 9
    answer = app.http.post(f"{prefix}/chat/completions", headers={"Authorization": f"Bearer {KEY}", **CALLER},
                           json={"model": "llama3.2", "messages": [{"role": "user", "content": "secret words"}],
                                 "temperature": 0.2})
    assert answer.status_code == 200, answer.text
    server = traced.wait_for(f"POST {prefix}/chat/completions")
    spans = traced.trace(CALLER_TRACE_ID)
    chat = one(spans, "chat llama3.2")
    assert parent_id(server) == CALLER_SPAN_ID and parent_id(chat) == hex_span(server)
    assert server.attributes["http.response.status_code"] == 200
    assert chat.attributes["gen_ai.request.temperature"] == 0.2
    assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (23, 9)
    assert fake_ollama.chat_requests[-1][1]["traceparent"] == traceparent_of(chat)
    assert "secret words" not in attribute_text(spans)


def test_a_streamed_completion_has_its_usage_on_the_llm_span(app, traced, fake_ollama):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 5, 4
    with app.http.stream("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}", **CALLER},
                         json={"messages": [{"role": "user", "content": "hi"}], "stream": True}) as answer:
        assert answer.status_code == 200
        assert "".join(answer.iter_text()).endswith("data: [DONE]\n\n")
    server = traced.wait_for("POST /v1/chat/completions")
    chat = one(traced.trace(CALLER_TRACE_ID), "chat llama3.2")
    assert parent_id(chat) == hex_span(server)
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (5, 4)
    assert fake_ollama.chat_requests[-1][1]["traceparent"] == traceparent_of(chat)


def test_an_openai_error_answer_is_traced_with_its_status(app, traced, fake_ollama):
    fake_ollama.fail_status = 503
    answer = app.http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}", **CALLER},
                           json={"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code >= 500
    server = traced.wait_for("POST /v1/chat/completions")
    assert server.attributes["http.response.status_code"] == answer.status_code
    assert server.status.status_code == StatusCode.ERROR


def test_execute_continues_the_callers_trace(app, traced, fake_ollama):
    body = {"command": "!ai", "args": ["what", "is", "a", "penguin?"], "user_id": "user-42",
            "entity_id": "twitch:channel:789", "community_id": "7", "session_id": "sess-1", "platform": "twitch"}
    answer = app.http.post("/api/v1/execute", json=body, headers=CALLER)
    assert answer.status_code == 200 and answer.json()["success"] is True
    server = traced.wait_for("POST /api/v1/execute")
    chat = one(traced.trace(CALLER_TRACE_ID), "chat llama3.2")
    assert parent_id(server) == CALLER_SPAN_ID and parent_id(chat) == hex_span(server)
    assert fake_ollama.chat_requests[-1][1]["traceparent"] == traceparent_of(chat)


def test_the_model_listing_a_request_asks_for_carries_its_trace(app, traced, fake_ollama):
    answer = app.http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}", **CALLER})
    assert answer.status_code == 200
    server = traced.wait_for("GET /v1/models")
    assert parent_id(server) == CALLER_SPAN_ID
    listings = [headers for path, headers, _ in fake_ollama.requests if path == "/api/tags" and "traceparent" in headers]
    assert [h["traceparent"] for h in listings] == [traceparent_of(server)]  # health probes carry none


def test_probes_and_scrapes_are_not_traced(app, traced):
    for path in ("/health", "/ready", "/metrics"):
        assert app.http.get(path, headers=CALLER).status_code == 200
    app.http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    traced.wait_for("GET /v1/models")
    assert {s.name for s in traced.spans()} == {"GET /v1/models"}


def test_with_tracing_unset_nothing_is_traced_or_propagated(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, valid_api_keys=KEY)) as app:
        assert app.runtime.tracing.on is False
        assert not isinstance(app.app.asgi_app, TracedRequests)  # the app is not even wrapped
        assert tracing.enabled() is False
        accept(app, "hello there", CALLER)
        reply = fake_router.wait_for_replies(1)[0]
        answer = app.http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}", **CALLER},
                               json={"messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200
        with tracing.span("anything") as span:
            assert not span.is_recording()
    assert "traceparent" not in reply["headers"] and "tracestate" not in reply["headers"]
    assert len(fake_ollama.chat_requests) == 2
    assert all("traceparent" not in headers for _, headers, _ in fake_ollama.chat_requests)


# --- the real exporter: OTLP/HTTP to a loopback collector, flushed at shutdown -----------------------
class FakeCollector:
    """Records each OTLP/HTTP export: (path, headers, ExportTraceServiceRequest)."""

    def __init__(self) -> None:
        self.exports: list[tuple[str, dict[str, str], ExportTraceServiceRequest]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not await is_http(scope, receive, send):
            return
        body = await read_body(receive) or b""
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.exports.append((scope["path"], headers, request))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-protobuf")]})
        await send({"type": "http.response.body", "body": b""})

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of everything exported."""
        found = []
        for _, _, request in self.exports:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                found += [(resource, s) for scope in resource_spans.scope_spans for s in scope.spans]
        return found


@pytest.fixture
def collector():
    fake = FakeCollector()
    server = ServerThread(fake).start()
    fake.url = server.url  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        server.stop()


def test_otlp_endpoint_exports_the_trace_and_flushes_at_shutdown(collector, fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, otel_exporter_otlp_endpoint=collector.url,
                             otel_exporter_otlp_headers="x-collector-key=k-123456789")
    with running_app(settings) as app:
        assert app.runtime.tracing.on is True and tracing.enabled() is True
        accept(app, "hello there", CALLER)
        fake_router.wait_for_replies(1)
        wait_until(lambda: settled(app))
    # the app stopped: the batch processor was flushed and shut down, tracing is off again
    assert tracing.enabled() is False
    exported = collector.spans()
    assert {s.name for _, s in exported} >= INTERACTION_SPANS
    assert {bytes(s.trace_id).hex() for _, s in exported} == {CALLER_TRACE_ID}
    resource = exported[0][0]
    assert resource["service.name"] == MODULE_NAME and resource["service.instance.id"]
    paths = {path for path, _, _ in collector.exports}
    assert paths == {"/v1/traces"}
    assert all(headers.get("x-collector-key") == "k-123456789" for _, headers, _ in collector.exports)


def test_the_service_name_and_the_traces_endpoint_as_given(collector, fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, otel_service_name="aim-eu-1",
                             otel_exporter_otlp_endpoint="http://127.0.0.1:9/unused",
                             otel_exporter_otlp_traces_endpoint=collector.url + "/custom/spans")
    with running_app(settings) as app:
        accept(app, "hello there")
        fake_router.wait_for_replies(1)
        wait_until(lambda: settled(app))
    assert {path for path, _, _ in collector.exports} == {"/custom/spans"}
    assert {resource["service.name"] for resource, _ in collector.spans()} == {"aim-eu-1"}


def test_otel_sdk_disabled_turns_tracing_off(collector, fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, otel_exporter_otlp_endpoint=collector.url,
                             otel_sdk_disabled=True)
    with running_app(settings) as app:
        assert app.runtime.tracing.on is False
        accept(app, "hello there", CALLER)
        reply = fake_router.wait_for_replies(1)[0]
    assert "traceparent" not in reply["headers"]
    assert collector.exports == []


def test_tracing_helpers_cost_nothing_when_off():
    """Off: no context is extracted or injected and span blocks are the shared do-nothing one."""
    assert tracing.enabled() is False
    assert tracing.extract({"traceparent": TRACEPARENT}) is None
    assert tracing.carrier() is None
    assert tracing.span("a") is tracing.span("b") is tracing.NO_SPAN

    async def inside() -> None:
        with tracing.continued({"traceparent": TRACEPARENT}):
            assert tracing.carrier() is None
    asyncio.run(inside())


def test_work_continued_elsewhere_joins_the_carried_trace(traced):
    """What an outbox sender does with a carried context: `continued(carrier)` around its work."""
    tracing.install(traced.provider)
    try:
        with tracing.continued({"traceparent": TRACEPARENT, "tracestate": TRACESTATE}):
            carried = tracing.carrier()
            with tracing.span("later.work"):
                pass
        with tracing.continued(None), tracing.span("unrelated"):
            pass
    finally:
        tracing.uninstall()
    assert carried == {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    later, unrelated = traced.wait_for("later.work"), traced.wait_for("unrelated")
    assert hex_trace(later) == CALLER_TRACE_ID and parent_id(later) == CALLER_SPAN_ID
    assert unrelated.parent is None and hex_trace(unrelated) != CALLER_TRACE_ID
