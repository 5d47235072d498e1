"""The OpenAI-compatible API (§8): POST …/chat/completions, GET …/models and …/models/{id}.

app.py registers this blueprint twice, so `openai.OpenAI(base_url=…/v1 or …/api/v1/ai)` works:

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
from dataclasses import dataclass

from quart import Blueprint, Response, current_app, g, jsonify, request
from quart_schema import document_request, document_response, hide
from werkzeug.routing import PathConverter

from api.auth import presented_key
from api.openai_errors import OpenAIError, register_error_handlers
from api.openai_models import ChatCompletion, ChatCompletionRequest, Model, ModelList, OpenAIErrorResponse
from api.openai_completions import answer
from services.completion_limits import KeyRateLimiter, key_id
from services.model_catalog import ModelCatalog

blueprint = Blueprint("openai", __name__)
register_error_handlers(blueprint)
OTHER_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(slots=True)
class OpenAIServices:
    limiter: KeyRateLimiter
    catalog: ModelCatalog


class AnyPath(PathConverter):
    """`path`, but also across line breaks (Werkzeug's `.` stops at "\\n"): a model id or an unknown
    URL holding one still reaches these routes and gets an OpenAI-shaped answer."""

    regex = "[^/][\\s\\S]*?"


@blueprint.record_once
def _setup(state: object) -> None:
    app = state.app  # type: ignore[attr-defined]
    app.url_map.converters["anypath"] = AnyPath  # before this blueprint's rules are added
    settings = app.extensions["settings"]
    app.extensions["openai"] = OpenAIServices(
        KeyRateLimiter(settings.completions_rate_per_min),
        ModelCatalog(fetch_timeout_s=min(5.0, settings.request_timeout)))


@blueprint.record
def _add_catch_all(state: object) -> None:
    if state.options.get("catch_all"):  # type: ignore[attr-defined]
        for index, rule in enumerate(("", "/", "/<anypath:rest>")):
            state.add_url_rule(rule, f"unknown_url_{index}", _unknown_url, methods=OTHER_METHODS)  # type: ignore


@blueprint.after_app_serving
async def _close() -> None:
    await current_app.extensions["openai"].catalog.aclose()


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
@document_response(OpenAIErrorResponse, 400)
@document_response(OpenAIErrorResponse, 401)
@document_response(OpenAIErrorResponse, 404)
@document_response(OpenAIErrorResponse, 413)
@document_response(OpenAIErrorResponse, 429)
@document_response(OpenAIErrorResponse, 503)
async def chat_completions() -> Response:
    decision = current_app.extensions["openai"].limiter.check(g.openai_key)
    if not decision.allowed:
        raise OpenAIError(
            429, f"Rate limit reached for this API key: {decision.limit} requests per minute "
                 f"(COMPLETIONS_RATE_PER_MIN). Retry after {decision.retry_after_s} s.",
            "requests", code="rate_limit_exceeded",
            headers={"Retry-After": str(decision.retry_after_s),
                     "x-ratelimit-limit-requests": str(decision.limit), "x-ratelimit-remaining-requests": "0"})
    runtime = current_app.extensions["runtime"]
    if runtime.draining or runtime.llm is None:
        raise OpenAIError(503, "The service is shutting down. Retry later.", "server_error",
                          code="shutting_down", headers={"Retry-After": "5"})
    return await answer(runtime.llm, await request.get_data(cache=False))


@blueprint.get("/models")
@document_response(ModelList, 200)
@document_response(OpenAIErrorResponse, 401)
async def list_models() -> Response:
    llm = current_app.extensions["runtime"].llm
    entries = await current_app.extensions["openai"].catalog.entries(llm) if llm else []
    return jsonify({"object": "list", "data": [e.as_openai() for e in entries]})


@blueprint.get("/models/<anypath:model_id>")
@document_response(Model, 200)
@document_response(OpenAIErrorResponse, 401)
@document_response(OpenAIErrorResponse, 404)
async def get_model(model_id: str) -> Response:
    llm = current_app.extensions["runtime"].llm
    entry = await current_app.extensions["openai"].catalog.find(llm, model_id) if llm else None
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
