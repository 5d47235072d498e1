"""Response bodies of the service's own API, as pydantic models (the request body of an
interaction is interactions/model.py's `InteractionRequest`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

class AcceptedData(BaseModel):
    message: str = "Processing request"
    session_id: str
    interaction_id: str
    duplicate: bool = False


class AcceptedResponse(BaseModel):
    success: bool = True
    data: AcceptedData
    timestamp: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorResponse(BaseModel):
    success: bool = False
    error: ErrorBody


class HealthResponse(BaseModel):
    status: str
    version: str
    uptime_s: float


class ReadyResponse(BaseModel):
    ready: bool
    reason: str | None
    draining: bool
    providers: dict[str, dict[str, Any]]
    community_endpoints: dict[str, dict[str, Any]] = {}  # name → breaker, inflight (llm/endpoints.py)
    notes: list[str] = []  # still ready, but degraded: e.g. Redis unavailable (state per process)
    redis: dict[str, Any] | None = None  # REDIS_URL set: available, down_for_s, error
    replies: str = "router"  # where replies go: "router" (ROUTER_API_URL) or "console" (unset: stdout)


class StatusData(BaseModel):
    module: str
    version: str
    provider: str
    fallback_provider: str | None
    model: str
    providers: dict[str, dict[str, Any]]
    community_endpoints: dict[str, dict[str, Any]] = {}
    queue_depth: int
    inflight: int
    draining: bool
    durable: bool


class StatusResponse(BaseModel):
    success: bool = True
    data: StatusData
