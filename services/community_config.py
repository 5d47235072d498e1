"""The configuration one interaction runs with: global settings, overridden per community (§7).

`source.effective(community_id)` returns an immutable `EffectiveConfig`: the settings, then the
global overrides (community 0, set by `PUT /api/v1/ai/config` without a community), then the
community's own. An override record is a dict of the columns of `ai_module_config`; a missing or
None value inherits, `triggers` is merged list by list. In memory the overrides live in this
process only (`persisted: false`); the PostgreSQL source (storage/pg_config.py) shares them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from config.settings import Settings
from services.triggers import TriggerConfig

OVERRIDABLE = (
    "provider", "model", "temperature", "max_tokens", "system_prompt",
    "user_cooldown_s", "channel_max_replies_per_min",
)
TRIGGER_FIELDS = ("bot_name", "greetings", "farewells", "question_marks", "event_types", "respond_to_events")
COLUMNS = OVERRIDABLE + ("base_url", "api_key_encrypted")  # plus "triggers", a dict


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    provider: str
    model: str | None  # None → the provider's default model
    temperature: float
    max_tokens: int
    system_prompt: str
    user_cooldown_s: float
    channel_max_replies_per_min: int
    triggers: TriggerConfig
    base_url: str | None = None  # stored per community; not used for calls yet (README)
    api_key_set: bool = False  # the key itself never leaves the store

    def public(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in OVERRIDABLE}
        out["base_url"] = self.base_url
        out["api_key_set"] = self.api_key_set
        out["triggers"] = {
            "bot_name": self.triggers.bot_name,
            "greetings": list(self.triggers.greetings),
            "farewells": list(self.triggers.farewells),
            "question_marks": list(self.triggers.question_marks),
            "event_types": sorted(self.triggers.event_types),
            "respond_to_events": self.triggers.respond_to_events,
        }
        return out


def global_config(settings: Settings) -> EffectiveConfig:
    return EffectiveConfig(
        provider=settings.ai_provider,
        model=None,
        temperature=settings.ai_temperature,
        max_tokens=settings.ai_max_tokens,
        system_prompt=settings.system_prompt,
        user_cooldown_s=settings.user_cooldown_s,
        channel_max_replies_per_min=settings.channel_max_replies_per_min,
        triggers=TriggerConfig.from_settings(settings),
    )


def _trigger_value(name: str, value: Any) -> Any:
    if name == "event_types":
        return frozenset(str(v).strip().lower() for v in value)
    if name in ("greetings", "farewells", "question_marks"):
        return tuple(str(v).strip() for v in value)
    return value


def apply_overrides(base: EffectiveConfig, overrides: dict[str, Any] | None) -> EffectiveConfig:
    """`base` with every set value of one override record applied."""
    if not overrides:
        return base
    changes: dict[str, Any] = {k: overrides[k] for k in OVERRIDABLE if overrides.get(k) is not None}
    if overrides.get("base_url") is not None:
        changes["base_url"] = overrides["base_url"]
    if overrides.get("api_key_encrypted"):
        changes["api_key_set"] = True
    triggers = {k: _trigger_value(k, v) for k, v in (overrides.get("triggers") or {}).items()
                if k in TRIGGER_FIELDS and v is not None}
    if triggers:
        changes["triggers"] = replace(base.triggers, **triggers)
    return replace(base, **changes) if changes else base


def merge_overrides(current: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """A new override record: `changes` on top of `current`; None removes a value (inherit again)."""
    merged = {k: v for k, v in (current or {}).items() if k in COLUMNS and v is not None}
    triggers = dict((current or {}).get("triggers") or {})
    for key, value in changes.items():
        if key == "triggers":
            if value is None:
                triggers = {}
            else:
                triggers.update(value)
        elif key in COLUMNS:
            merged[key] = value
    triggers = {k: v for k, v in triggers.items() if k in TRIGGER_FIELDS and v is not None}
    if triggers:
        merged["triggers"] = triggers
    return {k: v for k, v in merged.items() if v is not None}


def shown(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """An override record as an endpoint may show it: the encrypted key becomes `api_key_set`."""
    record = {k: v for k, v in (overrides or {}).items() if k != "api_key_encrypted"}
    record["api_key_set"] = bool((overrides or {}).get("api_key_encrypted"))
    return record


class MemoryConfigSource:
    """Overrides held in this process (`persisted: false`); community 0 holds the global ones."""

    persisted = False

    def __init__(self, settings: Settings) -> None:
        self.defaults = global_config(settings)
        self._overrides: dict[int, dict[str, Any]] = {}
        self._updated_at: dict[int, datetime] = {}
        self._resolved: dict[int, EffectiveConfig] = {0: self.defaults}

    async def effective(self, community_id: int | None) -> EffectiveConfig:
        return self._resolved.get(community_id or 0) or self._resolved[0]

    async def overrides(self, community_id: int | None) -> tuple[dict[str, Any], datetime | None]:
        key = community_id or 0
        return dict(self._overrides.get(key, {})), self._updated_at.get(key)

    async def update(self, community_id: int | None, changes: dict[str, Any]) -> EffectiveConfig:
        key = community_id or 0
        self._overrides[key] = merge_overrides(self._overrides.get(key), changes)
        self._updated_at[key] = datetime.now(timezone.utc)
        base = apply_overrides(self.defaults, self._overrides.get(0))
        self._resolved = {0: base}
        for cid, record in self._overrides.items():
            if cid:
                self._resolved[cid] = apply_overrides(base, record)
        return self._resolved[key]
