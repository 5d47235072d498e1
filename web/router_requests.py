"""What the router's two endpoints (the interaction ACK and execute) do before their own work:
read the body, check the router key, refuse while draining, check the content type, validate."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from quart import current_app, request

from web.auth import presented_key
from web.errors import ApiError, check_content_type, from_validation_error
from web.state import runtime

M = TypeVar("M", bound=BaseModel)


async def router_request(model: type[M]) -> M:
    """The validated body of a request from the router, or the ApiError to answer with."""
    extensions = current_app.extensions
    # Read the (size-capped) body before any early answer: Hypercorn closes a keep-alive connection
    # whose request body was left unread, and the router's next request on it would fail.
    body = await request.get_data(cache=False)
    keys = extensions["router_keys"]
    if keys and not keys.matches(presented_key(request, "X-Service-Key")):
        raise ApiError(401, "unauthorized", "Missing or invalid service key (X-Service-Key)")
    if runtime().draining:
        raise ApiError(503, "shutting_down", "Service is shutting down", headers={"Retry-After": "5"})
    check_content_type(request.mimetype)
    try:
        return model.model_validate_json(body, context=extensions["limits"])
    except ValidationError as exc:
        raise from_validation_error(exc) from None
