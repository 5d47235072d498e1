"""Tracing through the durable queue: the ACK's trace context is stored with the queued row, and the
instance that claims the row, another one here, continues the same trace (§12)."""

from __future__ import annotations

from tests.observability.spans import (CALLER, CALLER_SPAN_ID, CALLER_TRACE_ID, TRACESTATE, hex_span, hex_trace,
                                       one, parent_id, traceparent_of)
from tests.storage.conftest import pg_settings, wait_ready
from tests.support import interaction_body, running_app

ACK = "POST /api/v1/ai/interaction"


def test_the_trace_context_crosses_the_postgresql_queue_to_another_instance(pg, fake_ollama, fake_router, traced):
    settings = pg_settings(pg, fake_ollama, fake_router)
    with running_app(settings, tracer_provider=traced.provider) as a, \
            running_app(settings, tracer_provider=traced.provider) as b:
        wait_ready(a), wait_ready(b)
        a.runtime.queue.stop_claiming()  # A only accepts: B processes what A queued
        fake_router.hang = True  # the row keeps its payload (queued, then working) while we look
        ack = a.post_interaction(interaction_body("hello there"), headers=CALLER)
        assert ack.status_code == 202
        interaction_id = ack.json()["data"]["interaction_id"]
        server = traced.wait_for(ACK, **{"interaction.id": interaction_id})
        stored = pg.value("SELECT payload->'trace_context' FROM ai_interaction_queue WHERE id = $1", interaction_id)
        assert f'"traceparent": "{traceparent_of(server)}"' in stored and TRACESTATE in stored
        fake_router.hang = False
        fake_router.wait_for_replies(1)
        process = traced.wait_for("interaction.process", **{"interaction.id": interaction_id})
        assert pg.value("SELECT lease_owner FROM ai_interaction_queue WHERE id = $1",
                        interaction_id) == b.runtime.instance_id
    # B rebuilt the interaction from its row: its spans hang under A's ACK, in the caller's trace
    traced.wait_for("router.post_reply", **{"interaction.id": interaction_id, "router.result": "delivered"})
    spans = traced.trace(CALLER_TRACE_ID)
    assert hex_trace(process) == CALLER_TRACE_ID and parent_id(server) == CALLER_SPAN_ID
    assert process.attributes["interaction.outcome"] == "replied"
    wait = one(spans, "interaction.queue_wait")
    assert parent_id(wait) == parent_id(process) == hex_span(server)
    chat, post = one(spans, "chat llama3.2"), one(spans, "POST")
    assert parent_id(chat) == hex_span(process)
    assert fake_ollama.chat_requests[-1][1]["traceparent"] == traceparent_of(chat)
    assert fake_router.replies[-1]["headers"]["traceparent"] == traceparent_of(post)
    # finished: the row keeps no payload, so no trace context either
    assert pg.value("SELECT payload FROM ai_interaction_queue WHERE id = $1", interaction_id) is None
