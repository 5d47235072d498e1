"""POST /api/v1/execute: a chat command from the WaddleBot router, answered inline (§11,
interactions/commands.py). Same router key as the interaction endpoint (ROUTER_SERVICE_KEY)."""

from __future__ import annotations

import json

from quart import Blueprint, Response, g
from quart_schema import document_request, document_response

from interactions.commands import ExecuteRequest, ExecuteResponse
from web.models import ErrorResponse
from web.router_requests import router_request
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
    req = await router_request(ExecuteRequest)
    answer = await runtime().commands.execute(req, g.request_id)
    return Response(_encode(answer.model_dump()), status=200, content_type="application/json")
