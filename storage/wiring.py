"""Build the PostgreSQL-backed stores (DATABASE_URL set) as one unit the runtime starts and closes."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from storage.db import Database
from storage.maintenance import Maintenance
from storage.pg_config import PgConfigSource
from storage.pg_context import PgContextStore
from storage.pg_queue import PgQueue
from storage.pg_usage import PgUsage


@dataclass(slots=True)
class DurableStores:
    db: Database
    queue: PgQueue
    context: PgContextStore
    config_source: PgConfigSource
    usage: PgUsage
    maintenance: Maintenance

    async def start(self) -> None:
        """Returns at once; the pool connects (and migrates) in the background."""
        await self.db.start()
        self.queue.start()
        self.maintenance.start()

    async def close(self) -> None:
        """After the workers stopped and `queue.aclose()`: flush what is pending, close the pool."""
        await self.maintenance.stop()
        await self.db.close()


def build_durable(settings: Settings, owner: str) -> DurableStores:
    assert settings.database_url is not None
    s = settings
    db = Database(s.database_url.get_secret_value(), min_size=s.db_pool_min, max_size=s.db_pool_max,
                  timeout=s.db_timeout_s)
    usage = PgUsage(db)
    return DurableStores(
        db=db,
        queue=PgQueue(db, owner=owner, max_queue=s.max_queue, dedupe_window_s=s.dedupe_window_s,
                      lease_s=s.queue_lease_s, poll_s=s.queue_poll_s),
        context=PgContextStore(db, s.context_history_limit, s.context_ttl_s),
        config_source=PgConfigSource(db, s, s.config_cache_ttl_s),
        usage=usage,
        maintenance=Maintenance(db, usage, s.queue_retention_s, s.context_ttl_s),
    )
