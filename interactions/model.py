"""An interaction: the router's message as validated (`InteractionRequest`, §2), and the accepted
interaction as it travels from the ACK to its outcome.

Limits that depend on configuration (allowed platforms, MAX_MESSAGE_CHARS) are checked with the
validation context: `InteractionRequest.model_validate_json(body, context=limits)`.
No field is ever HTML-escaped or otherwise rewritten.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

METADATA_MAX_BYTES = 4096
# PostgreSQL's integer: community ids beyond it cannot be stored or looked up.
COMMUNITY_ID_MAX = 2_147_483_647
# Strings are refused when they hold NUL (U+0000): PostgreSQL text and jsonb cannot store it, and
# no chat platform sends it. Checked in both modes, so a body means the same with or without it.
# For the top-level strings the check is a pattern constraint, run by pydantic-core itself (no Python
# call per field on the ACK path); web/errors.py words its failure as NUL_MESSAGE.
NUL_MESSAGE = "must not contain NUL (U+0000) characters"
# The platform of a command whose caller did not name one (the published WaddleBot router does not).
UNKNOWN_PLATFORM = "unknown"
NO_NUL = r"^[^\x00]*$"
_metadata_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def check_platform(value: str, info: ValidationInfo) -> str:
    """A platform, lower-cased, among the configured PLATFORMS (the validation context's `platforms`)."""
    value = value.lower()
    allowed = (info.context or {}).get("platforms")
    if allowed is not None and value not in allowed:
        raise ValueError(f"must be one of: {', '.join(sorted(allowed))}")
    return value


def check_metadata(value: Any) -> Any:
    """A `metadata` object's rules (≤ 4 KiB as JSON, no NaN/Infinity, no NUL); None is `{}`."""
    if value is None:
        return {}
    if isinstance(value, dict) and value:
        try:  # echoed to the router as JSON: NaN and Infinity have no JSON form
            text = _metadata_json(value)
        except ValueError:
            raise ValueError("must not contain NaN or Infinity") from None
        if len(text) > METADATA_MAX_BYTES // 4 and len(text.encode()) > METADATA_MAX_BYTES:
            raise ValueError(f"must serialize to at most {METADATA_MAX_BYTES} bytes")
        if "\\u0000" in text and _has_nul(value):
            raise ValueError(NUL_MESSAGE)
    return value


def _has_nul(value: Any) -> bool:
    """NUL anywhere in a JSON value (strings and object keys, nested)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class InteractionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    user_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    entity_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    platform: str = Field(min_length=1, max_length=50, pattern=NO_NUL)
    username: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    display_name: str | None = Field(None, max_length=255, pattern=NO_NUL)
    message_type: str = Field("chatMessage", min_length=1, max_length=100, pattern=NO_NUL)
    message_content: str = Field("", pattern=NO_NUL)
    message_id: str | None = Field(None, min_length=1, max_length=255, pattern=NO_NUL)
    channel_id: str | None = Field(None, max_length=255, pattern=NO_NUL)
    execution_id: str | None = Field(None, max_length=255, pattern=NO_NUL)
    community_id: int | None = Field(None, gt=0, le=COMMUNITY_ID_MAX, strict=True)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str, info: ValidationInfo) -> str:
        return check_platform(value, info)

    @field_validator("message_content")
    @classmethod
    def _content_length(cls, value: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_message_chars", 10000)
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return value

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_size(cls, value: Any) -> Any:
        return check_metadata(value)

    @property
    def display(self) -> str:
        return self.display_name or self.username


@dataclass(slots=True)
class Interaction:
    request: InteractionRequest
    request_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    accepted_at: float = field(default_factory=time.time)  # wall clock: survives a process (PG mode)
    # the ACK's trace context as W3C headers (observability/tracing.py), to continue the trace where
    # the interaction is processed; None when tracing is off
    trace_context: dict[str, str] | None = None

    @property
    def age_s(self) -> float:
        return time.time() - self.accepted_at


def dedupe_key(req: InteractionRequest) -> str:
    """The router's message id when given; else session + type + content (§2)."""
    if req.message_id:
        return "m:" + req.message_id
    digest = hashlib.blake2b(
        "\x1f".join((req.session_id, req.message_type, req.message_content)).encode(), digest_size=16
    ).hexdigest()
    return "c:" + digest
