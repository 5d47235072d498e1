"""Bodies and query strings of the admin API (config, erase, usage), as pydantic models.

`ConfigUpdate` is a partial update: a field left out keeps its value, a field set to null goes
back to inheriting the global value. Unknown fields are refused (400 naming them), so a typo never
silently does nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from config import reply_rules
from config.settings import TRIGGER_LANGUAGE_CODES
from interactions.model import COMMUNITY_ID_MAX, NUL_MESSAGE
from llm.upstream import syntax_problem


def _no_nul(value: str | None) -> str | None:
    """PostgreSQL text and jsonb cannot hold NUL (U+0000): refused here, not at the store."""
    if value is not None and "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Word = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Mark = Annotated[str, Field(min_length=1, max_length=10), AfterValidator(_no_nul)]
TriggerLanguage = Literal[TRIGGER_LANGUAGE_CODES]  # type: ignore[valid-type]


class TriggerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_name: Text | None = Field(None, min_length=1, max_length=100)
    greetings: list[Word] | None = Field(None, max_length=200)
    farewells: list[Word] | None = Field(None, max_length=200)
    question_marks: list[Mark] | None = Field(None, max_length=20)
    event_types: list[Word] | None = Field(None, max_length=50)
    respond_to_events: bool | None = None


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["ollama", "waddleai"] | None = None
    model: Text | None = Field(None, min_length=1, max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    system_prompt: Text | None = Field(None, min_length=1, max_length=8000)
    base_url: Text | None = Field(None, min_length=1, max_length=500)
    api_key: SecretStr | None = Field(None, min_length=1, max_length=2000)
    user_cooldown_s: float | None = Field(None, ge=0, le=86400)
    channel_max_replies_per_min: int | None = Field(None, ge=0, le=100_000)
    triggers: TriggerUpdate | None = None
    trigger_languages: list[TriggerLanguage] | None = Field(None, min_length=1, max_length=len(TRIGGER_LANGUAGE_CODES))
    model_by_trigger: dict[str, Text] | None = None
    reply_blocklist: list[Text] | None = None

    @field_validator("trigger_languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None

    @field_validator("model_by_trigger")
    @classmethod
    def _models(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return reply_rules.model_by_trigger(value) if value is not None else None

    @field_validator("reply_blocklist")
    @classmethod
    def _blocklist(cls, value: list[str] | None) -> list[str] | None:
        return list(reply_rules.blocklist_entries(value)) if value is not None else None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """The URL's own rules (llm/upstream.py); its host's addresses are checked by the handler."""
        if value is not None and (problem := syntax_problem(value)):
            raise ValueError(problem)
        return value.rstrip("/") if value else value

    def changes(self) -> dict[str, Any]:
        """Only the fields the caller sent; `api_key` stays a SecretStr for the caller to encrypt."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set if name != "triggers"}
        if "triggers" in self.model_fields_set:
            t = self.triggers
            out["triggers"] = None if t is None else {n: getattr(t, n) for n in t.model_fields_set}
        return out


class TriggerCheckRequest(BaseModel):
    """The dry run of §4: which trigger would fire for `message` (as `username`) in a community."""

    model_config = ConfigDict(extra="forbid")

    message: Text = Field(max_length=10000)
    message_type: Text = Field("chatMessage", min_length=1, max_length=100)
    username: Text = Field("viewer", min_length=1, max_length=255)
    community_id: int | None = Field(None, gt=0, le=COMMUNITY_ID_MAX)


class TriggerCheckData(BaseModel):
    community_id: int | None
    trigger: str | None
    would_reply: bool
    language: str | None
    word: str | None
    reason: str
    model: str | None
    trigger_languages: list[str]


class TriggerCheckResponse(BaseModel):
    success: bool = True
    data: TriggerCheckData


class CommunityQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    community_id: int | None = Field(None, gt=0, le=COMMUNITY_ID_MAX)


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    community_id: int | None = Field(None, ge=0, le=COMMUNITY_ID_MAX)
    since: date | None = None

    @field_validator("since", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 10:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        return value or None


class ErasePath(BaseModel):
    platform: Text = Field(min_length=1, max_length=50)
    user_id: Text = Field(min_length=1, max_length=255)


# --- response shapes, for the OpenAPI document -----------------------------------------------------
class ConfigData(BaseModel):
    community_id: int | None
    effective: dict[str, Any]
    overrides: dict[str, Any]
    updated_at: str | None
    persisted: bool


class ConfigResponse(BaseModel):
    success: bool = True
    data: ConfigData


class EraseData(BaseModel):
    platform: str
    context_rows: int
    queued_rows: int
    persisted: bool


class EraseResponse(BaseModel):
    success: bool = True
    data: EraseData


class UsageData(BaseModel):
    community_id: int | None
    since: str | None
    rows: list[dict[str, Any]]
    totals: dict[str, int]
    persisted: bool


class UsageResponse(BaseModel):
    success: bool = True
    data: UsageData
