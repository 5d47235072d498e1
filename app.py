"""The Quart app factory and `python app.py` (Hypercorn on uvloop). Wiring only."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
import sys
import time
from typing import TextIO

from quart import Quart, Response, g, request
from quart_schema import QuartSchema

from api import admin, interaction, openai_api, operations
from api.auth import KeyRing
from api.errors import register_error_handlers
from api.quart_fastpaths import App
from config.settings import VERSION, ConfigError, Settings, load_settings
from services import metrics
from services.log_writer import LineWriter
from services.logs import configure_logging, get_logger, new_request_id, request_id_var
from services.runtime import Runtime

log = get_logger("app")
access_log = get_logger("access")
# Access lines of successful requests go to debug: probes, scrapes and the interaction ACK are
# counted by http_requests_total, and interactions and completions log their own line when they end.
# Failed requests (status >= 400) are logged at info.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def create_app(settings: Settings | None = None, log_stream: TextIO | None = None) -> Quart:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.user_hash_salt.get_secret_value(), settings.secret_values(),
                      log_stream)
    app = App(__name__)
    metrics.configure(settings)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=30)
    QuartSchema(app, info={"title": "AI Interaction Module", "version": VERSION})
    runtime = Runtime(settings)
    app.extensions["settings"] = settings
    app.extensions["runtime"] = runtime
    app.extensions["router_keys"] = KeyRing(settings.router_service_key)
    app.extensions["openai_keys"] = KeyRing(settings.valid_api_keys)
    app.extensions["admin_keys"] = KeyRing(settings.admin_api_keys)
    app.extensions["limits"] = {"platforms": frozenset(settings.platforms),
                                "max_message_chars": settings.max_message_chars}
    register_error_handlers(app)
    app.register_blueprint(interaction.blueprint)
    app.register_blueprint(operations.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(openai_api.blueprint, url_prefix="/api/v1/ai", name="openai")
    app.register_blueprint(openai_api.blueprint, url_prefix="/v1", name="openai_v1", catch_all=True)
    _register_request_hooks(app)

    @app.before_serving
    async def _start() -> None:
        await runtime.start()
        # Everything alive now (modules, settings, clients) lives as long as the process: keep it out
        # of the collector's scans, so full collections under load stay short (ACK tail latency).
        gc.collect()
        gc.freeze()
        # Young collections every 5,000 allocations instead of 700: fewer of them on the ACK path
        # (in-process CPU per ACK 281-289 -> 273-275 µs), while each stays short: measured pauses of
        # 2-18 ms with 1,000 interactions pending, against up to 51 ms at 50,000 (BENCHMARKS.md).
        gc.set_threshold(5_000, 10, 10)

    @app.after_serving
    async def _stop() -> None:
        await runtime.stop()

    return app


def _register_request_hooks(app: Quart) -> None:
    # Each request-local object is read through its proxy once per hook (each proxy access costs a
    # context lookup); the access line is built only when it will be written.
    debug_access = access_log.is_enabled_for(logging.DEBUG)

    @app.before_request
    async def _bind_request() -> None:
        given = request.headers.get("X-Request-ID", "")
        request_g = g._get_current_object()
        request_g.request_id = request_id = given if _REQUEST_ID.match(given) else new_request_id()
        request_g.started = time.perf_counter()
        request_id_var.set(request_id)

    @app.after_request
    async def _finish_request(response: Response) -> Response:
        req, request_g = request._get_current_object(), g._get_current_object()
        request_id = getattr(request_g, "request_id", None) or new_request_id()
        response.headers["X-Request-ID"] = request_id
        route = req.url_rule.rule if req.url_rule else None
        started = getattr(request_g, "started", None)
        elapsed = None if started is None else time.perf_counter() - started
        status = response.status_code
        metrics.observe_http(req.method, route, status, elapsed)
        if status >= 400 or debug_access:
            (access_log.debug if status < 400 else access_log.info)(
                "request", action="http_request", method=req.method, route=route or metrics.UNMATCHED_ROUTE,
                status=status, request_id=request_id,
                execution_time_ms=None if elapsed is None else round(elapsed * 1000, 2))
        return response

    # quart-schema converts every handler result (models to JSON); a Response is already one and
    # comes out unchanged, so it skips the conversion (the ACK returns a ready Response).
    convert_and_make = app.make_response

    async def make_response(result):  # type: ignore[no-untyped-def]
        if isinstance(result, Response):
            return result
        return await convert_and_make(result)

    app.make_response = make_response  # type: ignore[method-assign]


async def serve(app: Quart, settings: Settings) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{settings.module_host}:{settings.module_port}"]
    config.accesslog = None  # the app logs one JSON access line per request itself
    config.errorlog = logging.getLogger("hypercorn.error")  # as JSON through the root handler
    config.graceful_timeout = max(settings.shutdown_grace_s, 1.0)
    config.shutdown_timeout = settings.shutdown_grace_s + 15
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("shutdown signal received", action="shutdown")
        await app.extensions["runtime"].drain()  # 503 to new work while queued work finishes

    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(2)
    # Log lines are written to stdout by a thread, never on the event loop (services/log_writer.py).
    writer = LineWriter(sys.stdout)
    try:
        app = create_app(settings, writer)
        import uvloop

        uvloop.run(serve(app, settings))
    finally:
        writer.close()


if __name__ == "__main__":
    main()
