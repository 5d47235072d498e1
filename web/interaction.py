"""POST /api/v1/ai/interaction: validate, enqueue, answer 202 at once (§2)."""

from __future__ import annotations

import json
import time

from pydantic import ValidationError
from quart import Blueprint, Response, current_app, g, request
from quart_schema import document_request, document_response

from web.auth import presented_key
from web.errors import ApiError, check_content_type, from_validation_error
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
    extensions = current_app.extensions
    rt = runtime()
    keys = extensions["router_keys"]
    # Read the (size-capped) body before any early answer: Hypercorn closes a keep-alive connection
    # whose request body was left unread, and the router's next request on it would fail.
    body = await request.get_data(cache=False)
    if keys and not keys.matches(presented_key(request, "X-Service-Key")):
        raise ApiError(401, "unauthorized", "Missing or invalid service key (X-Service-Key)")
    if rt.draining:
        raise ApiError(503, "shutting_down", "Service is shutting down", headers={"Retry-After": "5"})
    check_content_type(request.mimetype)
    try:
        req = InteractionRequest.model_validate_json(body, context=extensions["limits"])
    except ValidationError as exc:
        raise from_validation_error(exc) from None
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
