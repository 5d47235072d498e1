"""The model list of the OpenAI-compatible API: configured defaults plus what providers list.

Each provider's listing is fetched lazily (on a /models request), cached for `ttl_s`, and
fetched by one task at a time however many requests want it. A request waits for a fetch at
most `fetch_timeout_s`; after that it answers with what is known (the last good listing, or
just the configured default models) while the fetch finishes in the background, bounded by the
provider's own timeout. A provider whose breaker is open or whose last health probe failed is
not asked. A failed fetch is retried after `retry_s`, not on every request.

Bounded: a provider's listing keeps at most `max_per_provider` ids (MAX_LISTED_MODELS, in the
upstream's order; a proxy may serve thousands), each a non-empty string of at most MAX_MODEL_ID
characters; the rest is dropped with a warning. A model the upstream serves beyond the cap can still
be called by name; only `GET /models/{id}` does not know it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from observability.logs import get_logger

log = get_logger(__name__)

MAX_LISTED_MODELS = 500  # per provider
MAX_MODEL_ID = 256


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    owned_by: str  # the provider serving it
    created: int  # unix time this process first saw the model (providers do not all say)

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by}


class ModelCatalog:
    def __init__(self, ttl_s: float = 60.0, fetch_timeout_s: float = 5.0, retry_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, max_per_provider: int = MAX_LISTED_MODELS) -> None:
        self.ttl_s = ttl_s
        self.max_per_provider = max_per_provider
        self.fetch_timeout_s = fetch_timeout_s
        self.retry_s = retry_s
        self._clock = clock
        self._listed: dict[str, list[str]] = {}  # provider → ids of its last good listing
        self._next_fetch: dict[str, float] = {}  # provider → monotonic time its listing is due
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._first_seen: dict[str, int] = {}

    async def entries(self, llm: Any) -> list[ModelEntry]:
        """Default models first (primary, then fallback), then each provider's listing; no duplicates."""
        now = self._clock()
        pending = []
        for name in llm.order():
            if now < self._next_fetch.get(name, 0.0) or not llm.usable(name):
                continue
            task = self._tasks.get(name)
            if task is None or task.done():
                task = asyncio.create_task(self._fetch(name, llm.providers[name]), name=f"list-models-{name}")
                self._tasks[name] = task
            pending.append(task)
        if pending:  # never cancels the fetches: a slow one finishes for the next request
            await asyncio.wait(pending, timeout=self.fetch_timeout_s)
        return self._build(llm)

    async def find(self, llm: Any, model_id: str) -> ModelEntry | None:
        """The entry for `model_id`, also as `provider/model` (answered with the id as asked)."""
        entries = await self.entries(llm)
        for entry in entries:
            if entry.id == model_id:
                return entry
        provider, _, name = model_id.partition("/")
        if name and provider in llm.providers:
            for entry in entries:
                if entry.owned_by == provider and entry.id == name:
                    return ModelEntry(model_id, provider, entry.created)
        return None

    async def _fetch(self, name: str, provider: Any) -> None:
        try:
            ids = await provider.list_models()
        except Exception as exc:  # keep the last good listing; try again later
            self._next_fetch[name] = self._clock() + self.retry_s
            log.warning("model listing failed", action="list_models", provider=name, result="error",
                        error=str(exc)[:200])
            return
        valid = list(dict.fromkeys(i for i in ids if isinstance(i, str) and 0 < len(i) <= MAX_MODEL_ID))
        if len(valid) > self.max_per_provider:
            log.warning("model listing cut to its first models", action="list_models", provider=name,
                        result="truncated", listed=len(valid), kept=self.max_per_provider)
        self._listed[name] = valid[:self.max_per_provider]
        self._next_fetch[name] = self._clock() + self.ttl_s

    def _build(self, llm: Any) -> list[ModelEntry]:
        names = llm.order()
        pairs = [(llm.providers[n].default_model, n) for n in names]
        pairs += [(model, n) for n in names for model in self._listed.get(n, [])]
        seen: set[str] = set()
        out = []
        for model, owner in pairs:
            if model in seen:
                continue
            seen.add(model)
            created = self._first_seen.setdefault(model, int(time.time()))
            out.append(ModelEntry(model, owner, created))
        return out

    async def aclose(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
