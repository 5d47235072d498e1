"""POST /api/v1/ai/interaction: validate, enqueue, answer 202 at once (§2)."""

from __future__ import annotations

import json
import time

from quart import Blueprint, Response, g
from quart_schema import document_request, document_response

from web.errors import ApiError
from web.router_requests import router_request
from interactions.model import Interaction, InteractionRequest
from web.models import AcceptedResponse, ErrorResponse
from web.state import runtime
from observability import metrics, tracing
from interactions.queue.base import QueueFull

blueprint = Blueprint("interaction", __name__, url_prefix="/api/v1/ai")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)


@blueprint.post("/interaction")
@document_request(InteractionRequest)
@document_response(AcceptedResponse, 202)
@document_response(ErrorResponse, 400)
@document_response(ErrorResponse, 401)
@document_response(ErrorResponse, 413)
@document_response(ErrorResponse, 415)
@document_response(ErrorResponse, 429)
@document_response(ErrorResponse, 503)
async def accept_interaction() -> tuple[Response, int]:
    rt = runtime()
    req = await router_request(InteractionRequest)
    interaction = Interaction(req, request_id=g.request_id, trace_context=tracing.carrier())
    try:
        enqueued = await rt.queue.enqueue(interaction)
    except QueueFull:
        raise ApiError(429, "queue_full", "Interaction queue is full, retry later",
                       headers={"Retry-After": "2"}) from None
    metrics.interactions_accepted_total.inc()
    tracing.set_attributes({"interaction.id": enqueued.interaction_id, "interaction.duplicate": enqueued.duplicate})
    data = {"message": "Processing request", "session_id": req.session_id,
            "interaction_id": enqueued.interaction_id, "duplicate": enqueued.duplicate}
    body_out = {"success": True, "data": data, "timestamp": _timestamp()}
    if enqueued.duplicate:
        body_out["duplicate"] = True
        metrics.interactions_total.labels(outcome="duplicate", trigger="none").inc()
    return Response(_encode(body_out), status=202, content_type="application/json")
