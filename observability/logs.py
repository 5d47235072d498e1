"""JSON logs, one object per line on stdout (written by a thread: observability/log_writer.py), with the request id bound per request.

Fields: timestamp, level, module, component, action, event (the message), request_id,
interaction_id, community, user (a short salted hash, never the raw id), result,
execution_time_ms. Standard-library records (Hypercorn, asyncio, warnings) are rendered as the
same JSON. Secrets known to the settings are scrubbed from every line as a last line of defence.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import structlog

from config.settings import MODULE_NAME

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

DEFAULT_SALT = "waddlebot"
_salt = DEFAULT_SALT.encode()
_secrets: tuple[str, ...] = ()


def new_request_id() -> str:
    return os.urandom(16).hex()  # 32 hex digits, like uuid4().hex, without building a UUID


def hash_user(user_id: str) -> str:
    """Short salted hash of a user id: stable within a deployment (same USER_HASH_SALT), so one
    user's lines can be followed; not reversible by lookup as long as the salt stays secret."""
    return hashlib.blake2s(user_id.encode(), key=_salt[:32], digest_size=6).hexdigest()


def _add_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("module", MODULE_NAME)
    if "request_id" not in event:
        rid = request_id_var.get()
        if rid:
            event["request_id"] = rid
    return event


def _add_stdlib_component(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    record = event.get("_record")
    if record is not None:
        event.setdefault("component", record.name)
    return event


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=repr)  # one encoder, not one per line
_second = [-1, ""]  # the formatted current second, cached


def _timestamp(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """ISO 8601 UTC with microseconds, formatting the date part once per second."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    event["timestamp"] = f"{_second[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event


def _render(_: Any, __: str, event: dict[str, Any]) -> str:
    """The JSON line, with every configured secret replaced by *** wherever it appears (values
    nested or not, exception text, keys): the last line of defence, one substring test per secret."""
    line = _ENCODER.encode(event)
    for secret in _secrets:
        if secret in line:
            line = line.replace(secret, "***")
    return line


def _secret_parts(secrets: list[str] | None, salt: str) -> tuple[str, ...]:
    """The strings to scrub: each secret, and the password inside a URL-shaped secret
    (DATABASE_URL), which drivers may print on its own. The default salt is public, not a secret."""
    found: set[str] = set()
    for secret in secrets or []:
        if not secret or secret == DEFAULT_SALT:
            continue
        found.add(secret)
        if "://" in secret:
            try:
                password = urlsplit(secret).password
            except ValueError:
                password = None
            if password:
                found.update({password, unquote(password)})
    # As they appear inside a JSON string (quotes, backslashes, control characters escaped).
    found.update([json.dumps(s, ensure_ascii=False)[1:-1] for s in found])
    # Longest first, so a secret containing another is replaced whole.
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def configure_logging(level: str = "INFO", salt: str = DEFAULT_SALT, secrets: list[str] | None = None,
                      stream: TextIO | None = None) -> None:
    """`stream` defaults to sys.stdout; `python app.py` passes a observability/log_writer.LineWriter
    around it, so that no log write blocks the event loop."""
    global _salt, _secrets
    out = stream or sys.stdout
    _salt = salt.encode() or DEFAULT_SALT.encode()
    _secrets = _secret_parts(secrets, salt)

    # Standard-library logging (Hypercorn, asyncio, Quart, warnings) → the same JSON on stdout.
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            _add_stdlib_component,
            _add_context,
            _timestamp,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _render,
        ],
    ))
    logging.basicConfig(handlers=[handler], level=level, force=True)
    logging.captureWarnings(True)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "hypercorn.access", "openai", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    # The service's own structlog loggers write straight to stdout (no stdlib round trip).
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            _add_context,
            _timestamp,
            structlog.processors.format_exc_info,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(component=name)
