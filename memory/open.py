"""Pick and open the conversation store named by [memory]."""

from __future__ import annotations

import logging

from core.config import MemoryConfig
from memory.redis_store import RedisStore
from memory.resilient import ResilientStore
from memory.sqlite_store import SQLiteStore
from memory.store import ConversationStore, StoreError, Stores

log = logging.getLogger(__name__)


async def open_store(cfg: MemoryConfig) -> ConversationStore:
    """Redis when configured or answering (auto), else the embedded SQLite file; outages absorbed."""
    return ResilientStore(await _open_backend(cfg), grace=cfg.retry_seconds)


SHAPES = "v2"  # the key version of the shapes this code writes
LEGACY = "v1"  # the key version it migrates from


async def _open_backend(cfg: MemoryConfig) -> Stores:
    ttl = cfg.ttl_days * 86400
    if cfg.backend in ("redis", "auto"):
        store = RedisStore(
            cfg.redis_url.get_secret_value(),
            f"{cfg.key_prefix}:{SHAPES}",
            cfg.max_turns,
            ttl,
            archive_turns=cfg.archive_turns,
            archive_days=cfg.archive_days,
            max_connections=cfg.redis_max_connections,
            pool_timeout=cfg.redis_pool_timeout,
            # "auto" decides at once whether Redis is there; "redis" waits out a restart
            retry_seconds=cfg.retry_seconds if cfg.backend == "redis" else 0.0,
        )
        try:
            await store.ping()
        except StoreError as exc:
            await store.close()
            if cfg.backend == "redis":
                raise
            log.info("memory: no redis answers (%s); using sqlite at %s", exc, cfg.sqlite_path)
        else:
            log.info("memory: redis (%s)", safe_url(cfg.redis_url.get_secret_value()))
            store.retry_seconds = cfg.retry_seconds
            try:
                await store.migrate(f"{cfg.key_prefix}:{LEGACY}")
                await store.index_sessions()  # conversations from before the console's list
            except StoreError:
                await store.close()
                raise
            return store
    store_sql = SQLiteStore(
        cfg.sqlite_path, cfg.max_turns, ttl, archive_turns=cfg.archive_turns, archive_days=cfg.archive_days
    )
    if cfg.backend == "sqlite":
        log.info("memory: sqlite at %s", cfg.sqlite_path)
    return store_sql


def safe_url(url: str) -> str:
    """The URL without its password."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
