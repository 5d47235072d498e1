"""The configuration one interaction runs with: global settings, overridden per community (§7).

`ConfigSource.effective(community_id)` returns an immutable `EffectiveConfig`. In memory the
overrides live in this process only; the PostgreSQL source (storage/) reads them through a TTL cache.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from config.settings import Settings
from services.triggers import TriggerConfig

OVERRIDABLE = (
    "provider", "model", "temperature", "max_tokens", "system_prompt",
    "user_cooldown_s", "channel_max_replies_per_min",
)


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

    def public(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in OVERRIDABLE}
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


class MemoryConfigSource:
    """Per-community overrides held in this process (`persisted: false`)."""

    persisted = False

    def __init__(self, settings: Settings) -> None:
        self.base = global_config(settings)
        self._overrides: dict[int, dict[str, Any]] = {}

    async def effective(self, community_id: int | None) -> EffectiveConfig:
        if community_id is None or community_id not in self._overrides:
            return self.base
        return replace(self.base, **self._overrides[community_id])

    async def update(self, community_id: int | None, changes: dict[str, Any]) -> EffectiveConfig:
        if community_id is None:
            self.base = replace(self.base, **changes)
            return self.base
        merged = {**self._overrides.get(community_id, {}), **changes}
        self._overrides[community_id] = merged
        return replace(self.base, **merged)
