"""The app factory: a plain ASGI app (Quart), so any ASGI server runs it unchanged.

    python app.py                                   # Hypercorn, as the design names (app.py)
    uvicorn --factory app:create_app --port 8005
    granian --interface asgi --factory app:create_app --port 8005

The runtime starts in the lifespan start-up and drains, then closes, in the lifespan shutdown:
whichever server runs the app stops accepting connections on SIGTERM, then the lifespan shutdown
lets accepted interactions finish (SHUTDOWN_GRACE_S); a request that still arrives on an open
connection meanwhile is answered 503.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
import time
from contextlib import contextmanager
from typing import Any, Iterator, TextIO

from quart import Quart, Response, g, request
from quart_schema import QuartSchema

from config.settings import VERSION, Settings, load_settings
from observability import metrics
from observability.logs import configure_logging, get_logger, new_request_id, request_id_var
from runtime import Runtime
from web import admin, execute, interaction, openai_api, operations
from web.auth import KeyRing
from web.docs_ui import SCHEMA_UI_OPTIONS, configure_docs_assets
from web.errors import register_error_handlers
from web.tracing import TracedRequests

log = get_logger("app")
access_log = get_logger("access")
# Access lines of successful requests go to debug: probes, scrapes and the interaction ACK are
# counted by http_requests_total, and interactions and completions log their own line when they end.
# Failed requests (status >= 400) are logged at info.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def create_app(settings: Settings | None = None, log_stream: TextIO | None = None,
               tracer_provider: Any = None) -> Quart:
    """`tracer_provider`: trace with this OpenTelemetry SDK provider instead of the one the OTEL_*
    variables configure (tests: the SDK's in-memory exporter)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.user_hash_salt.get_secret_value(), settings.secret_values(),
                      log_stream, settings.log_format)
    app = Quart(__name__)
    metrics.configure(settings)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=30)
    configure_docs_assets(app)  # /docs without a CDN (web/docs_ui.py)
    QuartSchema(app, info={"title": "AI Interaction Module", "version": VERSION}, **SCHEMA_UI_OPTIONS)
    runtime = Runtime(settings, tracer_provider, log_stream)
    app.extensions["settings"] = settings
    app.extensions["runtime"] = runtime
    app.extensions["router_keys"] = KeyRing(settings.router_service_key)
    app.extensions["openai_keys"] = KeyRing(settings.valid_api_keys)
    app.extensions["admin_keys"] = KeyRing(settings.admin_api_keys)
    app.extensions["limits"] = {"platforms": frozenset(settings.platforms),
                                "max_message_chars": settings.max_message_chars}
    register_error_handlers(app)
    app.register_blueprint(interaction.blueprint)
    app.register_blueprint(execute.blueprint)
    app.register_blueprint(operations.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(openai_api.blueprint, url_prefix="/api/v1/ai", name="openai")
    app.register_blueprint(openai_api.blueprint, url_prefix="/v1", name="openai_v1", catch_all=True)
    _register_request_hooks(app)
    if runtime.tracing.on:  # off: not wrapped, the requests cost what they did
        app.asgi_app = TracedRequests(app.asgi_app)  # type: ignore[method-assign]

    @app.before_serving
    async def _start() -> None:
        await runtime.start()
        # Everything alive now (modules, settings, clients) lives as long as the process: keep it out
        # of the collector's scans, so full collections under load stay short (ACK tail latency).
        gc.collect()
        gc.freeze()
        gc.set_threshold(5_000, 10, 10)  # fewer young collections on the ACK path, each still short

    @app.after_serving
    async def _stop() -> None:
        with _second_signal_cuts_the_drain(runtime):
            await runtime.stop()  # drain (SHUTDOWN_GRACE_S), then close every client and store

    return app


@contextmanager
def _second_signal_cuts_the_drain(runtime: Runtime) -> Iterator[None]:
    """The server's first SIGTERM/SIGINT began this shutdown, whichever server it is; a second one
    during the drain stops the waiting: unfinished work ends now (logged as `failed`; a durable
    queue keeps it for another replica) and the process exits."""
    loop = asyncio.get_running_loop()

    def second_signal(sig: signal.Signals) -> None:
        log.warning("second signal during the drain: stopping now", action="shutdown", signal=sig.name)
        runtime.drain_cut_short.set()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, second_signal, sig)
            installed.append(sig)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (an app in a test thread)
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _register_request_hooks(app: Quart) -> None:
    debug_access = access_log.is_enabled_for(logging.DEBUG)

    @app.before_request
    async def _bind_request() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = request_id = given if _REQUEST_ID.match(given) else new_request_id()
        g.started = time.perf_counter()
        request_id_var.set(request_id)

    @app.after_request
    async def _finish_request(response: Response) -> Response:
        request_id = g.get("request_id") or new_request_id()
        response.headers["X-Request-ID"] = request_id
        route = request.url_rule.rule if request.url_rule else None
        started = g.get("started")
        elapsed = None if started is None else time.perf_counter() - started
        status = response.status_code
        metrics.observe_http(request.method, route, status, elapsed)
        if status >= 400 or debug_access:
            (access_log.debug if status < 400 else access_log.info)(
                "request", action="http_request", method=request.method, route=route or metrics.UNMATCHED_ROUTE,
                status=status, request_id=request_id,
                execution_time_ms=None if elapsed is None else round(elapsed * 1000, 2))
        return response
