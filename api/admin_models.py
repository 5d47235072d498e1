"""Bodies and query strings of the admin API (config, erase, usage), as pydantic models.

`ConfigUpdate` is a partial update: a field left out keeps its value, a field set to null goes
back to inheriting the global value. Unknown fields are refused (400 naming them), so a typo never
silently does nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Word = Annotated[str, Field(min_length=1, max_length=100)]
Mark = Annotated[str, Field(min_length=1, max_length=10)]


class TriggerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_name: str | None = Field(None, min_length=1, max_length=100)
    greetings: list[Word] | None = Field(None, max_length=200)
    farewells: list[Word] | None = Field(None, max_length=200)
    question_marks: list[Mark] | None = Field(None, max_length=20)
    event_types: list[Word] | None = Field(None, max_length=50)
    respond_to_events: bool | None = None


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["ollama", "waddleai"] | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    system_prompt: str | None = Field(None, min_length=1, max_length=8000)
    base_url: str | None = Field(None, min_length=1, max_length=500)
    api_key: SecretStr | None = Field(None, min_length=1, max_length=2000)
    user_cooldown_s: float | None = Field(None, ge=0, le=86400)
    channel_max_replies_per_min: int | None = Field(None, ge=0, le=100_000)
    triggers: TriggerUpdate | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    def changes(self) -> dict[str, Any]:
        """Only the fields the caller sent; `api_key` stays a SecretStr for the caller to encrypt."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set if name != "triggers"}
        if "triggers" in self.model_fields_set:
            t = self.triggers
            out["triggers"] = None if t is None else {n: getattr(t, n) for n in t.model_fields_set}
        return out


class CommunityQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    community_id: int | None = Field(None, gt=0)


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    community_id: int | None = Field(None, ge=0)
    since: date | None = None

    @field_validator("since", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 10:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        return value or None


class ErasePath(BaseModel):
    platform: str = Field(min_length=1, max_length=50)
    user_id: str = Field(min_length=1, max_length=255)
