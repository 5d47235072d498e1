"""Operations endpoints (§9): health, readiness, status, metrics."""

from __future__ import annotations

import time

from quart import Blueprint, Response, current_app, jsonify
from quart_schema import document_response

from api.models import HealthResponse, ReadyResponse, StatusResponse
from config.settings import MODULE_NAME, VERSION
from services import metrics

blueprint = Blueprint("operations", __name__)


def _providers() -> dict[str, dict[str, object]]:
    runtime = current_app.extensions["runtime"]
    health = runtime.health.snapshot() if runtime.health else {}
    return {
        name: {"breaker": breaker.state, **health.get(name, {})}
        for name, breaker in runtime.breakers.items()
    }


@blueprint.get("/health")
@document_response(HealthResponse, 200)
async def health() -> Response:
    runtime = current_app.extensions["runtime"]
    return jsonify({"status": "healthy", "version": VERSION,
                    "uptime_s": round(time.time() - runtime.started_at, 1)})


@blueprint.get("/ready")
@document_response(ReadyResponse, 200)
@document_response(ReadyResponse, 503)
async def ready() -> tuple[Response, int]:
    runtime = current_app.extensions["runtime"]
    ok, reason = await runtime.ready()
    body = {"ready": ok, "reason": reason, "draining": runtime.draining, "providers": _providers()}
    return jsonify(body), 200 if ok else 503


@blueprint.get("/api/v1/ai/status")
@document_response(StatusResponse, 200)
async def status() -> Response:
    runtime = current_app.extensions["runtime"]
    s = runtime.settings
    model = s.ollama_model if s.ai_provider == "ollama" else s.waddleai_model
    return jsonify({
        "success": True,
        "data": {
            "module": MODULE_NAME, "version": VERSION, "provider": s.ai_provider,
            "fallback_provider": s.fallback_provider, "model": model,
            "providers": _providers(), "queue_depth": runtime.queue.depth(),
            "inflight": runtime.workers.inflight if runtime.workers else 0,
            "draining": runtime.draining, "durable": runtime.queue.durable,
        },
    })


@blueprint.get("/metrics")
async def metrics_endpoint() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, content_type=content_type)
