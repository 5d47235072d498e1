"""The body of a reply posted to `{ROUTER_API_URL}/responses`, in the shape `ROUTER_PROTOCOL` names (§6).

    contract   the service's own reply body (docs/api.md §6), every field
    waddlebot  the published WaddleBot router's `RouterResponseRequest`, which forbids any other field:
               {"event_id", "response", "platform", "channel_id"}

`body_builder(protocol)` returns the function; `OutgoingReply` carries what either shape needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from config.settings import MODULE_NAME

ReplyProtocol = Literal["contract", "waddlebot"]
WADDLEBOT_ID_MAX = 255  # event_id, channel_id: 1–255 characters, not blank
WADDLEBOT_RESPONSE_MAX = 5000  # response: 1–5000 characters, not blank


@dataclass(frozen=True, slots=True)
class OutgoingReply:
    interaction_id: str
    session_id: str
    platform: str
    entity_id: str
    user_id: str
    text: str
    trigger: str
    provider: str | None
    model: str | None
    fallback: bool
    processing_time_ms: int
    message_id: str | None = None
    channel_id: str | None = None
    execution_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def contract_body(reply: OutgoingReply) -> dict[str, Any]:
    return {
        "session_id": reply.session_id,
        "interaction_id": reply.interaction_id,
        "execution_id": reply.execution_id,
        "module_name": MODULE_NAME,
        "success": True,
        "response_action": "chat",
        "response_data": {
            "message": reply.text,
            "trigger_type": reply.trigger,
            "provider": reply.provider,
            "model": reply.model,
            "fallback": reply.fallback,
        },
        "chat_message": reply.text,
        "platform": reply.platform,
        "entity_id": reply.entity_id,
        "channel_id": reply.channel_id,
        "user_id": reply.user_id,
        "metadata": reply.metadata,
        "processing_time_ms": reply.processing_time_ms,
    }


def _id(preferred: str | None, otherwise: str) -> str:
    """The first of the two that is not blank, as the router keeps it (stripped, at most 255)."""
    value = (preferred or "").strip() or otherwise.strip()
    return value[:WADDLEBOT_ID_MAX]


def waddlebot_body(reply: OutgoingReply) -> dict[str, Any]:
    """`RouterResponseRequest` of penguintechinc/waddlebot (processing/router_module/validation_models.py).

    Its `platform` must be twitch, discord, slack or kick: a reply for another platform is refused
    there (400) and ends as `failed`, like any reply the router refuses."""
    return {
        "event_id": _id(reply.message_id, reply.interaction_id),
        "response": reply.text[:WADDLEBOT_RESPONSE_MAX],
        "platform": reply.platform,
        "channel_id": _id(reply.channel_id, reply.entity_id),
    }


BUILDERS: dict[str, Callable[[OutgoingReply], dict[str, Any]]] = {
    "contract": contract_body,
    "waddlebot": waddlebot_body,
}


def body_builder(protocol: ReplyProtocol) -> Callable[[OutgoingReply], dict[str, Any]]:
    return BUILDERS[protocol]
