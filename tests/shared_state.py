"""Two "replicas" of a store in one test: two Redis links, or two PostgreSQL pools on one schema, each
as an independent instance would hold it (tests of interactions/shared_limits.py,
completions/shared_limits.py, interactions/queue/shared_dedupe.py, storage/redis_context.py)."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from storage.db import Database
from storage.redis_link import RedisLink


def redis_link(url: str, prefix: str, timeout_s: float = 2.0, probe_s: float = 0.05) -> RedisLink:
    return RedisLink(url, prefix=prefix, timeout_s=timeout_s, probe_s=probe_s, max_connections=20)


@contextlib.asynccontextmanager
async def redis_links(url: str, prefix: str, n: int = 2, **kwargs: float) -> AsyncIterator[list[RedisLink]]:
    links = [redis_link(url, prefix, **kwargs) for _ in range(n)]
    try:
        yield links
    finally:
        for link in links:
            await link.aclose()


@contextlib.asynccontextmanager
async def pg_pools(dsn: str, n: int = 2) -> AsyncIterator[list[Database]]:
    dbs = [Database(dsn, min_size=1, max_size=8, timeout=5) for _ in range(n)]
    try:
        for db in dbs:
            await db.start()
            assert await db.wait_connected(15)
        yield dbs
    finally:
        for db in dbs:
            await db.close()
