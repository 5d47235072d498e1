"""One error type for the service's own API, mapped to one JSON shape in one place.

    {"success": false, "error": {"code": "...", "message": "...", "details": [...]}}

`details` names each bad field: [{"field": "user_id", "message": "...", "type": "..."}].
The OpenAI-compatible blueprint maps errors to OpenAI's shape itself (api/openai_errors.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from api.models import NO_NUL, NUL_MESSAGE
from services.logs import get_logger

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
