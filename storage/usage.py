"""Token usage per community, provider, model and UTC day (§1, issue 5).

`UsageStore.record(community_id, provider, model, prompt_tokens, completion_tokens)` is the one
hook every provider call site uses (the interaction pipeline; the OpenAI-compatible path may call
it too). It never raises. In memory the sums live in this process; with PostgreSQL they are
upserted into `ai_usage` (storage/pg_usage.py). Community 0 means "no community".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any, Protocol

from cachetools import LRUCache

UsageKey = tuple[int, str, str, date]  # (community_id or 0, provider, model, day)


@dataclass(frozen=True, slots=True)
class UsageRow:
    community_id: int
    provider: str
    model: str
    day: date
    requests: int
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        out["total_tokens"] = self.prompt_tokens + self.completion_tokens
        return out


def usage_key(community_id: int | None, provider: str, model: str) -> UsageKey:
    return (community_id or 0, provider, model or "unknown", datetime.now(timezone.utc).date())


def totals(rows: list[UsageRow]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in rows)
    completion = sum(r.completion_tokens for r in rows)
    return {"requests": sum(r.requests for r in rows), "prompt_tokens": prompt,
            "completion_tokens": completion, "total_tokens": prompt + completion}


def select(rows: list[UsageRow], community_id: int | None, since: date | None) -> list[UsageRow]:
    picked = [r for r in rows if (community_id is None or r.community_id == community_id)
              and (since is None or r.day >= since)]
    return sorted(picked, key=lambda r: (r.day, r.community_id, r.provider, r.model))


class UsageStore(Protocol):
    persisted: bool

    async def record(self, community_id: int | None, provider: str, model: str,
                     prompt_tokens: int, completion_tokens: int) -> None:
        """Add one provider call; never raises."""
        ...

    async def report(self, community_id: int | None = None, since: date | None = None) -> list[UsageRow]: ...

    async def flush(self) -> None: ...


class MemoryUsage:
    """Sums in this process (`persisted: false`), bounded to the most recently used keys."""

    persisted = False

    def __init__(self, max_keys: int = 50_000) -> None:
        self._sums: LRUCache[UsageKey, tuple[int, int, int]] = LRUCache(max_keys)

    async def record(self, community_id: int | None, provider: str, model: str,
                     prompt_tokens: int, completion_tokens: int) -> None:
        key = usage_key(community_id, provider, model)
        requests, prompt, completion = self._sums.get(key, (0, 0, 0))
        self._sums[key] = (requests + 1, prompt + max(0, prompt_tokens or 0),
                           completion + max(0, completion_tokens or 0))

    async def report(self, community_id: int | None = None, since: date | None = None) -> list[UsageRow]:
        rows = [UsageRow(*key, *sums) for key, sums in list(self._sums.items())]
        return select(rows, community_id, since)

    async def flush(self) -> None:
        return None
