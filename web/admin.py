"""The admin API (§7, §9), guarded by ADMIN_API_KEYS (Authorization: Bearer or X-API-Key):

- `GET/PUT /api/v1/ai/config[?community_id=N]`: the effective configuration and the community's own
  overrides; PUT changes them (global ones without community_id). Provider API keys are encrypted
  with CONFIG_ENCRYPTION_KEY and only ever shown as `api_key_set`. A `base_url` must pass
  llm/upstream.py (no credentials, no loopback/private/link-local/metadata host unless
  ALLOWED_UPSTREAM_HOSTS names it): else 400 naming `base_url`.
- `DELETE /api/v1/ai/context/{platform}/{user_id}`: forget a user (context and queued interactions).
- `GET /api/v1/ai/usage?community_id=&since=`: token usage rows and totals.
- `POST /api/v1/ai/triggers/check`: the dry run of the trigger decision for a message (§4).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from quart import Blueprint, Response, current_app, jsonify, request
from quart_schema import document_querystring, document_request, document_response

from web.admin_models import (
    CommunityQuery, ConfigResponse, ConfigUpdate, ErasePath, EraseResponse, TriggerCheckRequest,
    TriggerCheckResponse, UsageQuery, UsageResponse,
)
from web.auth import presented_key
from web.errors import ApiError, from_validation_error
from web.models import ErrorResponse
from web.state import runtime
from observability import metrics
from config.community import shown
from llm.upstream import allowed_hosts, url_problem
from observability.logs import get_logger, hash_user
from storage.usage import totals

log = get_logger(__name__)
blueprint = Blueprint("admin", __name__, url_prefix="/api/v1/ai")


def _errors(*statuses: int):  # type: ignore[no-untyped-def]
    """Document the service's error shape for each status (401 and 503 apply to every route here)."""
    def decorate(func):  # type: ignore[no-untyped-def]
        for status in (400, 401, *statuses, 503):
            func = document_response(ErrorResponse, status)(func)
        return func
    return decorate


@blueprint.before_request
async def _require_admin_key() -> None:
    keys = current_app.extensions["admin_keys"]
    if not keys:
        raise ApiError(401, "unauthorized", "The admin API is disabled: set ADMIN_API_KEYS to enable it")
    if not keys.matches(presented_key(request, "X-API-Key")):
        raise ApiError(401, "unauthorized", "Missing or invalid admin key (Authorization: Bearer or X-API-Key)")


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", f"Invalid field(s): {field}",
                    [{"field": field, "type": "value_error", "message": message}])


async def _config_answer(community_id: int | None) -> dict[str, Any]:
    source = runtime().config_source
    overrides, updated_at = await source.overrides(community_id)
    effective = await source.effective(community_id)
    return {"success": True, "data": {
        "community_id": community_id, "effective": effective.public(), "overrides": shown(overrides),
        "updated_at": updated_at.isoformat() if updated_at else None, "persisted": source.persisted}}


@blueprint.get("/config")
@document_querystring(CommunityQuery)
@document_response(ConfigResponse, 200)
@_errors()
async def get_config() -> Response:
    query = _parse(CommunityQuery, request.args.to_dict())
    return jsonify(await _config_answer(query.community_id))


@blueprint.put("/config")
@document_querystring(CommunityQuery)
@document_request(ConfigUpdate)
@document_response(ConfigResponse, 200)
@_errors(409, 413)
async def put_config() -> Response:
    rt = runtime()
    query = _parse(CommunityQuery, request.args.to_dict())
    body = await request.get_data(cache=False)
    try:
        update = ConfigUpdate.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    changes = update.changes()
    if changes.get("base_url") is not None:
        if problem := await url_problem(changes["base_url"], allowed_hosts(rt.settings.allowed_upstream_hosts)):
            raise _invalid("base_url", problem)
    if changes.get("provider") and changes["provider"] not in rt.providers:
        base_url = (changes["base_url"] if "base_url" in changes
                    else (await rt.config_source.effective(query.community_id)).base_url)
        if base_url is None:  # a provider the service does not run needs the community's own endpoint
            configured = ", ".join(sorted(rt.providers))
            raise _invalid("provider", f"not configured on this service (AI_PROVIDER/FALLBACK_PROVIDER): use "
                                       f"{configured}, or set base_url to the community's own endpoint")
    if "api_key" in changes:
        secret = changes.pop("api_key")
        if secret is not None and rt.cipher is None:
            raise ApiError(409, "encryption_key_missing",
                           "Cannot store an API key: set CONFIG_ENCRYPTION_KEY (a Fernet key) first",
                           [{"field": "api_key", "message": "CONFIG_ENCRYPTION_KEY is not set",
                             "type": "encryption_key_missing"}])
        changes["api_key_encrypted"] = None if secret is None else rt.cipher.encrypt(secret.get_secret_value())
    await rt.config_source.update(query.community_id, changes)
    log.info("configuration updated", action="config_update", community=query.community_id,
             fields=sorted(k for k in changes), persisted=rt.config_source.persisted)
    return jsonify(await _config_answer(query.community_id))


@blueprint.post("/triggers/check")
@document_request(TriggerCheckRequest)
@document_response(TriggerCheckResponse, 200)
@_errors(413)
async def check_triggers() -> Response:
    """Would this message be answered, by which trigger, in which language (§4)? No LLM, no post."""
    rt = runtime()
    body = await request.get_data(cache=False)
    try:
        ask = TriggerCheckRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    check = await rt.pipeline.check(ask.message, ask.message_type, ask.username, ask.community_id)
    found = check.match
    return jsonify({"success": True, "data": {
        "community_id": ask.community_id, "trigger": found.trigger, "would_reply": found.trigger is not None,
        "language": found.language, "word": found.word, "reason": found.reason, "model": check.model,
        "trigger_languages": list(check.languages)}})


@blueprint.delete("/context/<platform>/<user_id>")
@document_response(EraseResponse, 200)
@_errors()
async def erase_user(platform: str, user_id: str) -> Response:
    rt = runtime()
    path = _parse(ErasePath, {"platform": platform, "user_id": user_id})
    platform = path.platform.lower()
    queued = await rt.queue.erase_user(platform, path.user_id)
    context = await rt.context.erase_user(platform, path.user_id)
    if queued:
        metrics.interactions_total.labels(outcome="failed", trigger="none").inc(queued)
    log.info("user erased", action="erase_user", platform=platform, user=hash_user(path.user_id),
             context_rows=context, queued_rows=queued, result="erased")
    return jsonify({"success": True, "data": {
        "platform": platform, "context_rows": context, "queued_rows": queued,
        "persisted": bool(rt.queue.durable)}})


@blueprint.get("/usage")
@document_querystring(UsageQuery)
@document_response(UsageResponse, 200)
@_errors()
async def usage() -> Response:
    rt = runtime()
    query = _parse(UsageQuery, request.args.to_dict())
    rows = await rt.usage.report(query.community_id, query.since)
    return jsonify({"success": True, "data": {
        "community_id": query.community_id, "since": query.since.isoformat() if query.since else None,
        "rows": [r.as_dict() for r in rows], "totals": totals(rows), "persisted": rt.usage.persisted}})
