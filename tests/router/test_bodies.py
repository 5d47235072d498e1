"""The reply bodies of ROUTER_PROTOCOL (§6): `waddlebot` is what the published router's strict
`RouterResponseRequest` accepts, whatever the interaction carried."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router.bodies import OutgoingReply, body_builder, contract_body, waddlebot_body
from tests.fakes.waddlebot_router import RouterResponseRequest


def outgoing(**changes) -> OutgoingReply:
    values = dict(interaction_id="41185fa0-0000-4000-8000-000000000001", session_id="s1", platform="twitch",
                  entity_id="twitch:channel:789", user_id="u1", text="🤖 Hello!", trigger="greeting",
                  provider="ollama", model="llama3.2", fallback=False, processing_time_ms=12,
                  message_id="m-1", channel_id="789", execution_id="e1", metadata={"k": "v"})
    values.update(changes)
    return OutgoingReply(**values)


def test_builder_by_protocol():
    assert body_builder("contract") is contract_body and body_builder("waddlebot") is waddlebot_body


def test_waddlebot_body_has_exactly_the_routers_fields():
    body = waddlebot_body(outgoing())
    assert body == {"event_id": "m-1", "response": "🤖 Hello!", "platform": "twitch", "channel_id": "789"}
    assert RouterResponseRequest.model_validate(body).model_dump() == body


@pytest.mark.parametrize("changes,event_id,channel_id", [
    ({"message_id": None, "channel_id": None}, "41185fa0-0000-4000-8000-000000000001", "twitch:channel:789"),
    ({"message_id": "  ", "channel_id": ""}, "41185fa0-0000-4000-8000-000000000001", "twitch:channel:789"),
    ({"message_id": " m-2 ", "channel_id": " 42 "}, "m-2", "42"),
])
def test_waddlebot_ids_fall_back_to_the_interaction_and_the_entity(changes, event_id, channel_id):
    body = waddlebot_body(outgoing(**changes))
    assert (body["event_id"], body["channel_id"]) == (event_id, channel_id)
    RouterResponseRequest.model_validate(body)


def test_waddlebot_response_is_cut_to_fit():
    body = waddlebot_body(outgoing(text="🤖 " + "word " * 1500, entity_id="e" * 255))
    assert len(body["response"]) == 5000
    RouterResponseRequest.model_validate(body)


def test_contract_body_is_refused_by_the_published_router():
    with pytest.raises(ValidationError) as info:
        RouterResponseRequest.model_validate(contract_body(outgoing()))
    assert {e["type"] for e in info.value.errors()} == {"extra_forbidden", "missing"}
