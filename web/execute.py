"""POST /api/v1/execute: a chat command from the WaddleBot router, answered inline (§11,
interactions/commands.py). Same router key as the interaction endpoint (ROUTER_SERVICE_KEY)."""

from __future__ import annotations

import json

from pydantic import ValidationError
from quart import Blueprint, Response, current_app, g, request
from quart_schema import document_request, document_response

from interactions.commands import ExecuteRequest, ExecuteResponse
from web.auth import presented_key
from web.errors import ApiError, check_content_type, from_validation_error
from web.models import ErrorResponse
from web.state import runtime

blueprint = Blueprint("execute", __name__, url_prefix="/api/v1")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@blueprint.post("/execute")
@document_request(ExecuteRequest)
@document_response(ExecuteResponse, 200)
@document_response(ErrorResponse, 400)
@document_response(ErrorResponse, 401)
@document_response(ErrorResponse, 413)
@document_response(ErrorResponse, 415)
@document_response(ErrorResponse, 503)
async def execute() -> tuple[Response, int]:
    extensions = current_app.extensions
    rt = runtime()
    body = await request.get_data(cache=False)  # read before any early answer (web/interaction.py)
    keys = extensions["router_keys"]
    if keys and not keys.matches(presented_key(request, "X-Service-Key")):
        raise ApiError(401, "unauthorized", "Missing or invalid service key (X-Service-Key)")
    if rt.draining:
        raise ApiError(503, "shutting_down", "Service is shutting down", headers={"Retry-After": "5"})
    check_content_type(request.mimetype)
    try:
        req = ExecuteRequest.model_validate_json(body, context=extensions["limits"])
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    answer = await rt.commands.execute(req, g.request_id)
    return Response(_encode(answer.model_dump()), status=200, content_type="application/json")
