"""Every error the HTTP layer answers, mapped in this one module, in one of two shapes:

The service's own API (interaction, operations, admin):

    {"success": false, "error": {"code": "...", "message": "...", "details": [...]}}

`details` names each bad field: [{"field": "user_id", "message": "...", "type": "..."}].

The OpenAI-compatible API (web/openai_api.py), in OpenAI's own shape and status codes:

    {"error": {"message": "...", "type": "...", "param": "messages[0].role" | null, "code": "..." | null}}

400 invalid_request_error (param names the field, an unknown field (`unknown_parameter`), or a
parameter the provider cannot honour),
401 bad/missing key or VALID_API_KEYS unset, 404 unknown model (whatever status the upstream said
"no such model" with) or URL, 405, 413, 429 rate limit (Retry-After), 500 our own failure,
502 upstream_misconfigured (the upstream rejected OUR credentials or headers: never blamed on the
caller's request), 503 provider unavailable / breaker open / timeout / shutting down (Retry-After). Its handlers are
registered on that blueprint, so those routes never answer in the other shape; the openai SDK maps
the statuses to BadRequestError, AuthenticationError, ….
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from quart import Blueprint, Quart, Response, jsonify, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from interactions.model import NO_NUL, NUL_MESSAGE
from llm.fidelity import UnsupportedParameter
from llm.types import ModelNotFound, ProviderError, ProviderMisconfigured, ProviderUnavailable
from observability.logs import get_logger
from storage.errors import StoreUnavailable

log = get_logger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Turn pydantic errors into [{field, message, type}] without echoing the input back."""
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_NUL:
            details.append({"field": field, "message": NUL_MESSAGE, "type": "value_error"})
            continue
        details.append({"field": field, "message": err["msg"], "type": err["type"]})
    return details


def check_content_type(mimetype: str) -> None:
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json",
                       [{"field": "Content-Type", "message": f"got {mimetype}", "type": "media_type"}])


def from_validation_error(exc: ValidationError) -> ApiError:
    details = validation_details(exc)
    if any(d["type"] == "json_invalid" for d in details):
        return ApiError(400, "invalid_json", "Request body is not valid JSON",
                        [{"field": "body", "message": "malformed JSON", "type": "json_invalid"}])
    names = ", ".join(d["field"] for d in details)
    return ApiError(400, "validation_error", f"Invalid field(s): {names}", details)


def error_response(err: ApiError) -> Response:
    body = {"success": False, "error": {"code": err.code, "message": err.message, "details": err.details}}
    response = jsonify(body)
    response.status_code = err.status
    response.headers.update(err.headers)
    return response


_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
    429: "rate_limited", 503: "unavailable",
}


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(err: ApiError) -> Response:
        return error_response(err)

    @app.errorhandler(StoreUnavailable)
    async def _store_unavailable(err: StoreUnavailable) -> Response:
        return error_response(ApiError(503, "store_unavailable", err.message,
                                       headers={"Retry-After": str(err.retry_after_s)}))

    @app.errorhandler(RequestSchemaValidationError)
    async def _schema_error(err: RequestSchemaValidationError) -> Response:
        inner = err.validation_error
        if isinstance(inner, ValidationError):
            return error_response(from_validation_error(inner))
        return error_response(ApiError(400, "validation_error", str(inner)))

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = (err.description or err.name or code).split("\n")[0]
        if status == 413:
            message = "Request body exceeds MAX_BODY_BYTES"
        return error_response(ApiError(status, code, message))

    @app.errorhandler(Exception)
    async def _unexpected(err: Exception) -> Response:
        log.error("unhandled error", action="http_error", error_type=type(err).__name__, exc_info=err)
        return error_response(ApiError(500, "internal_error", "Internal server error"))


# --- the OpenAI-compatible API ----------------------------------------------------------------

PROVIDER_RETRY_AFTER_S = "5"


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        response = jsonify(self.body())
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def _param(loc: tuple[Any, ...]) -> str | None:
    """("messages", 0, "role") → "messages[0].role"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def from_validation(exc: ValidationError) -> OpenAIError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    if first["type"] == "json_invalid":
        return OpenAIError(400, "We could not parse the JSON body of your request: it is not valid JSON.",
                           code="invalid_json")
    param = _param(tuple(first["loc"]))
    if param is None:
        return OpenAIError(400, f"The request body must be a JSON object: {first['msg']}", code="invalid_body")
    if first["type"] == "extra_forbidden":  # OpenAI's own words for a field it does not know
        return OpenAIError(400, f"Unrecognized request argument supplied: {param}", param=param,
                           code="unknown_parameter")
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    detail = first["msg"].removeprefix("Value error, ")
    message = f"Invalid value for '{param}': {detail}."
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    return OpenAIError(400, message, param=param, code=code)


def from_provider(exc: ProviderError) -> OpenAIError:
    retry = {"Retry-After": PROVIDER_RETRY_AFTER_S}
    if isinstance(exc, ModelNotFound):
        return OpenAIError(404, f"The model `{exc.model}` does not exist or is not available on provider "
                                f"{exc.provider}.", param="model", code="model_not_found")
    if isinstance(exc, UnsupportedParameter):
        return OpenAIError(400, str(exc), param=exc.param, code=exc.code)
    if isinstance(exc, ProviderMisconfigured):  # the upstream's words are in our log, not for callers
        return OpenAIError(502, f"The LLM provider ({exc.provider}) refused this service's own configuration "
                                f"(HTTP {exc.status}: its credentials, headers or URL); this is not a problem with "
                                "your request. The service's operator must fix the provider settings.", "server_error",
                           code="upstream_misconfigured")
    if isinstance(exc, ProviderUnavailable) and exc.model:
        return OpenAIError(503, f"The model `{exc.model}` on provider {exc.provider} is temporarily unavailable "
                                "after repeated failures (quota or rate limit). Retry later.", "server_error",
                           param="model", code="model_unavailable", headers=retry)
    if isinstance(exc, ProviderUnavailable):
        return OpenAIError(503, f"The LLM provider ({exc.provider}) is unavailable: its circuit breaker is "
                                "open. Retry later.", "server_error", code="provider_unavailable", headers=retry)
    if exc.kind == "request":
        return OpenAIError(400, f"The LLM provider ({exc.provider}) rejected the request: {str(exc)[:300]}",
                           code="provider_rejected_request")
    if exc.kind == "timeout":
        return OpenAIError(503, f"The LLM provider ({exc.provider}) timed out. Retry later.", "server_error",
                           code="provider_timeout", headers=retry)
    return OpenAIError(503, f"The LLM provider ({exc.provider}) failed ({exc.kind}). Retry later.",
                       "server_error", code="provider_error", headers=retry)


def from_http(exc: HTTPException) -> OpenAIError:
    status = exc.code or 500
    if status == 404:
        return OpenAIError(404, f"Unrecognized request URL ({request.method}: {request.path}).",
                           code="unknown_url")
    if status == 405:
        return OpenAIError(405, f"Method {request.method} is not allowed for {request.path}.",
                           code="method_not_allowed")
    if status == 413:  # the rest of the body is not read: the connection cannot be reused
        return OpenAIError(413, "Request body exceeds MAX_BODY_BYTES.", code="request_too_large",
                           headers={"Connection": "close"})
    message = (exc.description or exc.name or "HTTP error").split("\n")[0]
    return OpenAIError(status, message, "invalid_request_error" if status < 500 else "server_error")


def internal_error() -> OpenAIError:
    return OpenAIError(500, "The server had an error while processing your request.", "server_error",
                       code="internal_error")


def in_band(exc: BaseException) -> dict[str, Any]:
    """The `data: {"error": …}` event for a failure after the stream started."""
    return (from_provider(exc) if isinstance(exc, ProviderError) else internal_error()).body()


async def settle_body() -> None:
    """Let the request body arrive before answering early (401, 429, …): Hypercorn closes a
    keep-alive connection whose request was not fully received, and a client reusing it (the
    openai SDK does) would fail with "Server disconnected". Bounded by MAX_BODY_BYTES and BODY_TIMEOUT."""
    try:
        await request.get_data(cache=False)
    except Exception:  # too large, timed out, gone: nothing to keep alive
        pass


def register_openai_error_handlers(blueprint: Blueprint) -> None:
    @blueprint.errorhandler(OpenAIError)
    async def _openai_error(err: OpenAIError) -> Response:
        await settle_body()
        return err.response()

    @blueprint.errorhandler(ProviderError)
    async def _provider_error(err: ProviderError) -> Response:
        return from_provider(err).response()

    @blueprint.errorhandler(RequestSchemaValidationError)
    async def _schema_error(err: RequestSchemaValidationError) -> Response:
        inner = err.validation_error
        if isinstance(inner, ValidationError):
            return from_validation(inner).response()
        return OpenAIError(400, str(inner)).response()

    @blueprint.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        if err.code != 413:
            await settle_body()
        return from_http(err).response()

    @blueprint.errorhandler(Exception)
    async def _unexpected(err: Exception) -> Response:
        log.error("unhandled error", action="openai_http_error", error_type=type(err).__name__, exc_info=err)
        await settle_body()
        return internal_error().response()
