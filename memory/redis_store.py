"""The stores on Redis (redis-py asyncio), over one pool; keys are versioned under `key_prefix` (`rp:v2`).

Shapes (v2): the turn log and summaries (memory/redis_turns.py), fact books, reply contexts, settings
and counters (memory/redis_records.py), `seen:...` as in v1 and `journal:...` (memory/redis_journal.py).
`migrate` copies a v1 namespace once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from core.stores import StoreError
from core.turns import Fact, FactBook
from memory.redis_index import backfill, glob_escape
from memory.redis_journal import RedisJournal
from memory.redis_link import COMMAND_TIMEOUT, RedisLink, RedisPart
from memory.redis_records import RedisCounters, RedisFacts, RedisReplies, RedisSettings
from memory.redis_retry import transient
from memory.redis_turns import RedisTurnLog
from memory.store import Stores

log = logging.getLogger(__name__)


class RedisStore(Stores):
    """Production stores: shared by every bot process that points at the same Redis."""

    def __init__(
        self,
        url: str,
        prefix: str = "rp:v2",
        max_turns: int = 200,
        ttl: float = 0.0,
        *,
        archive_turns: int = 10_000,
        archive_days: float = 0.0,
        max_connections: int = 64,
        pool_timeout: float = 10.0,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.link = link = RedisLink(url, prefix, ttl, max_connections=max_connections, pool_timeout=pool_timeout,
                                     retry_seconds=retry_seconds, clock=clock, wall=wall)
        self._r = link.r
        self._p = prefix
        turns = RedisTurnLog(link, max_turns, archive_turns=archive_turns, archive_days=archive_days)
        super().__init__("redis", turns, turns, RedisFacts(link), RedisReplies(link), RedisSettings(link),
                         RedisCounters(link), RedisJournal(link, link.r, prefix), _Pinger(link).ping, link.r.aclose)

    @property
    def retry_seconds(self) -> float:
        """How long a call keeps trying through a restart (0 at start-up with backend auto)."""
        return self.link.retry_seconds

    @retry_seconds.setter
    def retry_seconds(self, seconds: float) -> None:
        self.link.retry_seconds = seconds

    async def index_sessions(self) -> int:
        """Add conversations stored before the session list existed to it (once); how many."""
        try:
            return await backfill(self._r, self._p, self.link.wall)
        except RedisError as exc:
            raise StoreError(f"redis: listing the stored conversations failed: {exc}") from exc

    async def migrate(self, legacy: str) -> int:
        """Copy the v1 namespace `legacy` (e.g. `rp:v1`) into this one, once; the keys copied.

        Everything is copied with its TTL (DUMP/RESTORE); v1 fact lists become v2 fact books (facts
        of unknown time and place, shown in every conversation as before). Keys already present here
        are left as they are, and the v1 keys stay where they were, so running it again, or after an
        interruption, loses nothing. A marker key makes later starts skip it.
        """
        marker, lock = f"{self._p}:migrated", f"{self._p}:migrating"
        try:
            if await self._r.exists(marker):
                return 0
            token = uuid.uuid4().hex
            if not await self._r.set(lock, token, nx=True, ex=600):
                for _ in range(600):  # another process is migrating: wait for it
                    await asyncio.sleep(0.1)
                    if await self._r.exists(marker):
                        return 0
                raise StoreError(f"redis migration from {legacy} did not finish in another process")
            raw = aioredis.Redis.from_url(self.link.url, decode_responses=False, socket_timeout=COMMAND_TIMEOUT)
            copied = 0
            try:
                async for name in raw.scan_iter(match=f"{glob_escape(legacy)}:*", count=1000):
                    copied += await self._copy_v1(raw, name, legacy)
            finally:
                await raw.aclose()
            body = json.dumps({"from": legacy, "keys": copied, "at": self.link.wall()})
            await self._r.set(marker, body)
            await self._r.delete(lock)
        except RedisError as exc:
            raise StoreError(f"redis migration from {legacy} failed: {exc}") from exc
        if copied:
            log.info(
                "memory: copied %d keys from %s to %s; the %s keys are left in place (delete them when satisfied)",
                copied, legacy, self._p, legacy,
            )
        return copied

    async def _copy_v1(self, raw: aioredis.Redis, name: bytes, legacy: str) -> int:
        rest = name.decode()[len(legacy) + 1 :]
        target = f"{self._p}:{rest}"
        if rest.startswith("facts:"):
            if await raw.type(name) != b"list":
                return 0
            texts = [t.decode() if isinstance(t, bytes) else str(t) for t in await raw.lrange(name, 0, -1)]
            book = FactBook(tuple(Fact(i, text) for i, text in enumerate(texts, start=1)))
            return 1 if await self._r.set(target, book.dumps(), nx=True) else 0
        dumped = await raw.dump(name)
        ttl = await raw.pttl(name)
        if dumped is None or ttl == -2:
            return 0  # expired meanwhile
        try:
            await raw.restore(target.encode(), max(0, ttl), dumped)
        except ResponseError as exc:
            if "BUSYKEY" in str(exc):
                return 0  # copied before (or written since): left alone
            raise
        return 1



class _Pinger(RedisPart):
    @transient("ping")
    async def ping(self) -> None:
        """Raise StoreError when Redis does not answer."""
        await self._r.ping()
