"""`python app.py`: serve the app (web/app.py) with Hypercorn on uvloop.

SIGTERM or SIGINT: Hypercorn stops accepting, then the app's lifespan shutdown drains accepted work
(SHUTDOWN_GRACE_S) and closes. A second signal during the drain exits at once (status 1).
Any ASGI server runs the same app: `uvicorn --factory app:create_app`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from quart import Quart

from config.settings import ConfigError, Settings, load_settings
from observability.log_writer import LineWriter
from observability.logs import get_logger
from web.app import create_app

__all__ = ["create_app", "main", "serve"]
log = get_logger("app")


async def serve(app: Quart, settings: Settings, writer: LineWriter | None = None) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{settings.module_host}:{settings.module_port}"]
    config.accesslog = None  # the app logs its own access lines
    config.errorlog = logging.getLogger("hypercorn.error")  # as JSON through the root handler
    config.graceful_timeout = 5.0  # open requests may finish; the drain itself is the lifespan's
    config.shutdown_timeout = settings.shutdown_grace_s + 15
    stop = asyncio.Event()

    def on_signal(name: str) -> None:
        if not stop.is_set():
            log.info("shutdown signal received", action="shutdown", signal=name)
            stop.set()
            return
        log.warning("second signal during shutdown: exiting now", action="shutdown", signal=name)
        if writer is not None:
            writer.close()
        os._exit(1)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(2)
    # Log lines are written to stdout by a thread, never on the event loop (observability/log_writer.py).
    writer = LineWriter(sys.stdout)
    try:
        app = create_app(settings, writer)
        import uvloop

        uvloop.run(serve(app, settings, writer))
    finally:
        writer.close()


if __name__ == "__main__":
    main()
