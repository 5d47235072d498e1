"""The OpenAI-compatible API (§8): POST …/chat/completions, GET …/models and …/models/{id}.

web/app.py registers this blueprint twice, so `openai.OpenAI(base_url=…/v1 or …/api/v1/ai)` works:

    app.register_blueprint(blueprint, url_prefix="/api/v1/ai", name="openai")
    app.register_blueprint(blueprint, url_prefix="/v1", name="openai_v1", catch_all=True)

`catch_all` answers any other URL under that prefix with an OpenAI-shaped 404 (/api/v1/ai is
shared with the service's own API, so there only these routes are OpenAI's).
Auth: a key of VALID_API_KEYS as `Authorization: Bearer` or `X-API-Key`, constant time.
`x-overhead-ms` on every response: the time from the request's arrival to its response headers,
minus the time spent inside provider calls (for a stream: minus the wait for the first chunk).
"""

from __future__ import annotations

import time
from typing import AsyncIterator

from pydantic import ValidationError
from quart import Blueprint, Response, current_app, g, jsonify, request
from quart_schema import document_request, document_response, hide
from werkzeug.routing import PathConverter

from completions import service as completions
from completions.limits import key_id
from llm.types import ChatRequest
from observability.logs import hash_user
from web.auth import presented_key
from web.errors import OpenAIError, from_validation, in_band, register_openai_error_handlers
from web.openai_models import (
    BadRequestResponse,
    ChatCompletion,
    ChatCompletionRequest,
    InternalErrorResponse,
    Model,
    ModelList,
    NotFoundResponse,
    OpenAIErrorResponse,
    RateLimitedResponse,
    TooLargeResponse,
    UnauthorizedResponse,
    UnavailableResponse,
    UpstreamMisconfiguredResponse,
)
from web.state import runtime

blueprint = Blueprint("openai", __name__)
register_openai_error_handlers(blueprint)
OTHER_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class AnyPath(PathConverter):
    """`path`, but also across line breaks (Werkzeug's `.` stops at "\\n"): a model id or an unknown
    URL holding one still reaches these routes and gets an OpenAI-shaped answer."""

    regex = "[^/][\\s\\S]*?"


@blueprint.record_once
def _add_converter(state: object) -> None:
    state.app.url_map.converters["anypath"] = AnyPath  # type: ignore[attr-defined]  # before the rules


@blueprint.record
def _add_catch_all(state: object) -> None:
    if state.options.get("catch_all"):  # type: ignore[attr-defined]
        for index, rule in enumerate(("", "/", "/<anypath:rest>")):
            state.add_url_rule(rule, f"unknown_url_{index}", _unknown_url, methods=OTHER_METHODS)  # type: ignore


@blueprint.before_request
async def _authenticate() -> None:
    g.openai_provider_s = 0.0
    if request.method == "OPTIONS":
        return
    keys = current_app.extensions["openai_keys"]
    if not keys:
        raise OpenAIError(401, "The OpenAI-compatible API is disabled: no API keys are configured. "
                               "Set VALID_API_KEYS (comma-separated keys) to enable it.",
                          code="api_keys_not_configured")
    key = presented_key(request, "X-API-Key")
    if not keys.matches(key):
        message = "Incorrect API key provided." if key else "You didn't provide an API key " \
            "(Authorization: Bearer <key> or X-API-Key)."
        raise OpenAIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    g.openai_key = key_id(key)  # type: ignore[arg-type]


@blueprint.after_request
async def _overhead(response: Response) -> Response:
    started = getattr(g, "started", None)
    if started is not None:
        overhead = (time.perf_counter() - started - getattr(g, "openai_provider_s", 0.0)) * 1000
        response.headers["x-overhead-ms"] = f"{max(overhead, 0.0):.2f}"
    return response


@blueprint.post("/chat/completions")
@document_request(ChatCompletionRequest)
@document_response(ChatCompletion, 200)
@document_response(BadRequestResponse, 400)
@document_response(UnauthorizedResponse, 401)
@document_response(NotFoundResponse, 404)
@document_response(TooLargeResponse, 413)
@document_response(RateLimitedResponse, 429)
@document_response(InternalErrorResponse, 500)
@document_response(UpstreamMisconfiguredResponse, 502)
@document_response(UnavailableResponse, 503)
async def chat_completions() -> Response:
    rt = runtime()
    decision = await rt.completion_limiter.take(g.openai_key)
    if not decision.allowed:
        raise OpenAIError(
            429, f"Rate limit reached for this API key: {decision.limit} requests per minute "
                 f"(COMPLETIONS_RATE_PER_MIN). Retry after {decision.retry_after_s} s.",
            "requests", code="rate_limit_exceeded",
            headers={"Retry-After": str(decision.retry_after_s),
                     "x-ratelimit-limit-requests": str(decision.limit), "x-ratelimit-remaining-requests": "0"})
    if rt.draining:
        raise OpenAIError(503, "The service is shutting down. Retry later.", "server_error",
                          code="shutting_down", headers={"Retry-After": "5"})
    req = _parse(await request.get_data(cache=False), rt.settings.max_completion_messages)
    who = req.user or req.safety_identifier
    call = completions.CompletionCall(_to_input(req), key=g.openai_key, user=hash_user(who) if who else None)
    try:
        if call.given.stream:
            events = await completions.stream(rt.llm, rt.usage, call, in_band)
            return _event_stream(events)
        body = await completions.complete(rt.llm, rt.usage, call)
        return Response(body, status=200, content_type="application/json")
    finally:
        g.openai_provider_s = call.provider_s


def _parse(body: bytes, max_messages: int) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate_json(body or b"", context={"max_messages": max_messages})
    except ValidationError as exc:
        raise from_validation(exc) from None


def _to_input(req: ChatCompletionRequest) -> completions.CompletionInput:
    request = ChatRequest(
        messages=[m.for_provider() for m in req.messages], temperature=req.temperature,
        max_tokens=req.max_tokens, max_completion_tokens=req.max_completion_tokens, top_p=req.top_p,
        stop=req.stop, seed=req.seed, frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty, tools=[t.as_sent() for t in req.tools] if req.tools else None,
        tool_choice=req.tool_choice_as_sent(), parallel_tool_calls=req.parallel_tool_calls,
        response_format=req.response_format.as_sent() if req.response_format else None,
        logprobs=req.logprobs, top_logprobs=req.top_logprobs, extra_params=req.passed_on(),
        request_id=g.get("request_id"))
    return completions.CompletionInput(request, model=req.model, stream=bool(req.stream),
                                       include_usage=req.include_usage, include_obfuscation=req.include_obfuscation)


def _event_stream(events: AsyncIterator[bytes]) -> Response:
    response = Response(events, status=200, content_type="text/event-stream; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # no proxy buffering either
    response.timeout = None  # never cut a long stream, whatever RESPONSE_TIMEOUT says
    return response


@blueprint.get("/models")
@document_response(ModelList, 200)
@document_response(OpenAIErrorResponse, 401)
async def list_models() -> Response:
    rt = runtime()
    entries = await rt.catalog.entries(rt.llm)
    return jsonify({"object": "list", "data": [e.as_openai() for e in entries]})


@blueprint.get("/models/<anypath:model_id>")
@document_response(Model, 200)
@document_response(OpenAIErrorResponse, 401)
@document_response(OpenAIErrorResponse, 404)
async def get_model(model_id: str) -> Response:
    rt = runtime()
    entry = await rt.catalog.find(rt.llm, model_id)
    if entry is None:
        raise OpenAIError(404, f"The model `{model_id}` does not exist or is not available.",
                          param="model", code="model_not_found")
    return jsonify(entry.as_openai())


def _wrong_method(allowed: str):  # type: ignore[no-untyped-def]
    @hide
    async def view(**_: str) -> Response:
        raise OpenAIError(405, f"Method {request.method} is not allowed for {request.path}; use {allowed}.",
                          code="method_not_allowed", headers={"Allow": allowed})
    return view


@hide
async def _unknown_url(rest: str = "") -> Response:
    raise OpenAIError(404, f"Unrecognized request URL ({request.method}: {request.path}).", code="unknown_url")


for _endpoint, _rule, _allowed in (("chat_completions_other", "/chat/completions", "POST"),
                                   ("list_models_other", "/models", "GET"),
                                   ("get_model_other", "/models/<anypath:model_id>", "GET")):
    blueprint.add_url_rule(_rule, _endpoint, _wrong_method(_allowed),
                           methods=[m for m in OTHER_METHODS if m != _allowed])
