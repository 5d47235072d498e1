"""Operations endpoints (§9): health, readiness, status, metrics."""

from __future__ import annotations

import time

from quart import Blueprint, Response, jsonify
from quart_schema import document_response

from web.models import HealthResponse, ReadyResponse, StatusResponse
from config.settings import MODULE_NAME, VERSION
from observability import metrics
from web.state import runtime

blueprint = Blueprint("operations", __name__)


def _providers() -> dict[str, dict[str, object]]:
    health = runtime().health.snapshot()
    return {
        name: {"breaker": breaker.state, **health.get(name, {})}
        for name, breaker in runtime().breakers.items()
    }


@blueprint.get("/health")
@document_response(HealthResponse, 200)
async def health() -> Response:
    return jsonify({"status": "healthy", "version": VERSION,
                    "uptime_s": round(time.time() - runtime().started_at, 1)})


@blueprint.get("/ready")
@document_response(ReadyResponse, 200)
@document_response(ReadyResponse, 503)
async def ready() -> tuple[Response, int]:
    rt = runtime()
    ok, reason = await rt.ready()
    body = {"ready": ok, "reason": reason, "draining": rt.draining, "providers": _providers(),
            "community_endpoints": rt.endpoints.snapshot(), "notes": rt.notes(),
            "redis": rt.redis.snapshot() if rt.redis is not None else None, "replies": rt.router.destination}
    return jsonify(body), 200 if ok else 503


@blueprint.get("/api/v1/ai/status")
@document_response(StatusResponse, 200)
async def status() -> Response:
    rt = runtime()
    s = rt.settings
    model = s.ollama_model if s.ai_provider == "ollama" else s.waddleai_model
    return jsonify({
        "success": True,
        "data": {
            "module": MODULE_NAME, "version": VERSION, "provider": s.ai_provider,
            "fallback_provider": s.fallback_provider, "model": model,
            "providers": _providers(), "community_endpoints": rt.endpoints.snapshot(), "queue_depth": rt.queue.depth(), "inflight": rt.workers.inflight,
            "outbox_depth": rt.outbox.depth(), "draining": rt.draining, "durable": rt.queue.durable,
        },
    })


@blueprint.get("/metrics")
async def metrics_endpoint() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, content_type=content_type)
