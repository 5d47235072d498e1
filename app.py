"""`python app.py`: serve the app (web/app.py) with Hypercorn on uvloop.

SIGTERM or SIGINT: Hypercorn stops accepting, then the app's lifespan shutdown drains accepted work
(SHUTDOWN_GRACE_S) and closes. A second signal during the drain exits at once (status 1). A port that is taken or a host that cannot be
bound is one line on stderr naming it (status 2), before anything starts.
Any ASGI server runs the same app: `uvicorn --factory app:create_app`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import sys

from quart import Quart

from config.settings import ConfigError, Settings, load_settings
from observability.log_writer import LineWriter
from observability.logs import get_logger
from web.app import create_app

__all__ = ["create_app", "main", "serve"]
log = get_logger("app")


class BindError(Exception):
    """The listening socket could not be made; the message says what to do."""


def bind_message(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen on {where}: port {port} is already in use; stop what uses it "
                f"or set MODULE_PORT to a free port")
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: port {port} needs privileges; set MODULE_PORT to 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return (f"cannot listen on {where}: {host!r} is not an address of this machine; set MODULE_HOST "
                f"to 0.0.0.0 (every interface), 127.0.0.1 or one of its addresses")
    return f"cannot listen on {where}: {exc.strerror or exc}; check MODULE_HOST and MODULE_PORT"


async def serve(app: Quart, settings: Settings, writer: LineWriter | None = None) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{settings.module_host}:{settings.module_port}"]
    config.accesslog = None  # the app logs its own access lines
    config.errorlog = logging.getLogger("hypercorn.error")  # as JSON through the root handler
    config.graceful_timeout = 5.0  # open requests may finish; the drain itself is the lifespan's
    config.shutdown_timeout = settings.shutdown_grace_s + 15
    # Bind first (Hypercorn's own Config.create_sockets), before the app starts: a taken port is a
    # clear message, not a traceback after start-up. Hypercorn serves the bound sockets (fd:// binds).
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        raise BindError(bind_message(settings.module_host, settings.module_port, exc)) from None
    config.bind = [f"fd://{sock.detach()}" for sock in sockets.insecure_sockets]
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
    except BindError as exc:
        writer.close()
        print(str(exc), file=sys.stderr)
        sys.exit(2)
    finally:
        writer.close()


if __name__ == "__main__":
    main()
