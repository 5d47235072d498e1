"""Logs on stdout (written by a thread: observability/log_writer.py), with the request id bound per request.

LOG_FORMAT: `json`, one object per line, for machines; `console`, one short readable line per event
(`12:00:01 INFO  service started  store=memory`), coloured on a terminal; `auto` (the default):
console when stdout is a terminal, else JSON.

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
    return _scrub(_ENCODER.encode(event))


def _scrub(line: str) -> str:
    for secret in _secrets:
        if secret in line:
            line = line.replace(secret, "***")
    return line


# --- the console format ---------------------------------------------------------------------------
_HIDDEN = frozenset({"timestamp", "level", "event", "module", "component", "exception"})
_COLOURS = {"debug": "\x1b[2m", "info": "\x1b[32m", "warning": "\x1b[33m", "error": "\x1b[31m",
            "critical": "\x1b[31;1m"}
_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"
MAX_VALUE_CHARS = 80


def config_brief(config: dict[str, Any]) -> str:
    """The start-up configuration in one short line (the full object is in LOG_FORMAT=json)."""
    provider = config.get("ai_provider")
    model = config.get("ollama_model") if provider == "ollama" else config.get("waddleai_model")
    upstream = (f"{config.get('ollama_host')}:{config.get('ollama_port')}" if provider == "ollama"
                else config.get("waddleai_base_url"))
    parts = {
        "listen": f"{config.get('module_host')}:{config.get('module_port')}",
        "provider": f"{provider} ({model} at {upstream})",
        "fallback_provider": config.get("fallback_provider"),
        "replies": config.get("router_api_url") or "console",
        "database": config.get("database_url"), "redis": config.get("redis_url"),
    }
    return "  ".join(f"{k}={v}" for k, v in parts.items() if v not in (None, "unset"))


def _value(key: str, value: Any) -> str:
    if key == "config" and isinstance(value, dict):
        return config_brief(value)
    if key in ("request_id", "interaction_id") and isinstance(value, str):
        return value[:8]  # enough to follow one on a console (the JSON format has them whole)
    if isinstance(value, (list, tuple, set)):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = ",".join(f"{k}:{v}" for k, v in value.items())
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


class ConsoleLines:
    """`HH:MM:SS LEVEL event  key=value …`: the same record as the JSON line, short; colour when `colour`."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, _: Any, __: str, event: dict[str, Any]) -> str:
        level = str(event.get("level", "info")).lower()
        stamp = str(event.get("timestamp", ""))[11:19]
        pairs = [(k, _value(k, v)) for k, v in event.items() if k not in _HIDDEN and v is not None]
        message = str(event.get("event", ""))
        brief = None
        if isinstance(event.get("config"), dict):  # the start-up summary: its brief, on a line of its own
            pairs = [p for p in pairs if p[0] != "config"]
            brief = config_brief(event["config"])
        if self.colour:
            colour = _COLOURS.get(level, "")
            head = f"{_DIM}{stamp}{_RESET} {colour}{level.upper():<7}{_RESET} {_BOLD}{message}{_RESET}"
            tail = "  ".join(f"{_DIM}{k}={_RESET}{v}" for k, v in pairs)
        else:
            head = f"{stamp} {level.upper():<7} {message}"
            tail = "  ".join(f"{k}={v}" for k, v in pairs)
        line = f"{head}  {tail}" if tail else head
        if brief:
            line += "\n         " + brief
        if event.get("exception"):
            line += "\n" + str(event["exception"]).rstrip()
        return _scrub(line)


def console_wanted(log_format: str, stream: Any) -> bool:
    """LOG_FORMAT=console, or auto on a terminal."""
    if log_format != "auto":
        return log_format == "console"
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


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
                      stream: TextIO | None = None, log_format: str = "json") -> None:
    """`stream` defaults to sys.stdout; `python app.py` passes a observability/log_writer.LineWriter
    around it, so that no log write blocks the event loop. `log_format`: json, console or auto."""
    global _salt, _secrets
    out = stream or sys.stdout
    console = console_wanted(log_format, out)
    render: Any = ConsoleLines(colour=console and console_wanted("auto", out)) if console else _render
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
            render,
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
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(component=name)
