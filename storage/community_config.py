"""Where the per-community configuration lives: this process (`MemoryConfigSource`) or PostgreSQL
(storage/pg_config.py), both behind `ConfigSource`. What a configuration holds and how overrides
merge is config/community.py."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol

from config.community import EffectiveConfig, apply_overrides, global_config, merge_overrides
from config.settings import Settings


class ConfigSource(Protocol):
    persisted: bool

    async def effective(self, community_id: int | None) -> EffectiveConfig:
        """The configuration one interaction of this community runs with."""
        ...

    async def overrides(self, community_id: int | None) -> tuple[dict[str, Any], datetime | None]:
        """The community's own override record and when it changed."""
        ...

    async def update(self, community_id: int | None, changes: dict[str, Any]) -> EffectiveConfig: ...


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
