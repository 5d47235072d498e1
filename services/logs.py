"""JSON logs, one object per line on stdout, with the request id bound per request.

Fields: timestamp, level, module, action, event (the message), request_id, interaction_id,
community, user (a short salted hash, never the raw id), result, execution_time_ms.
Secrets known to the settings are scrubbed from every line as a last line of defence.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import uuid
from contextvars import ContextVar
from typing import Any

import structlog

from config.settings import MODULE_NAME

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_salt = b"waddlebot"
_secrets: tuple[str, ...] = ()


def new_request_id() -> str:
    return uuid.uuid4().hex


def hash_user(user_id: str) -> str:
    """Short salted hash of a user id: stable within a deployment, not reversible by lookup."""
    return hashlib.blake2s(user_id.encode(), key=_salt[:32], digest_size=6).hexdigest()


def _add_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("module", MODULE_NAME)
    rid = request_id_var.get()
    if rid and "request_id" not in event:
        event["request_id"] = rid
    return event


def _scrub(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    if not _secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            for secret in _secrets:
                if secret in value:
                    value = value.replace(secret, "***")
            event[key] = value
    return event


def configure_logging(level: str = "INFO", salt: str = "waddlebot", secrets: list[str] | None = None) -> None:
    global _salt, _secrets
    _salt = salt.encode() or b"waddlebot"
    _secrets = tuple(s for s in (secrets or []) if len(s) >= 4)
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level, force=True)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "hypercorn.access", "openai", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            _add_context,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            _scrub,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(component=name)
