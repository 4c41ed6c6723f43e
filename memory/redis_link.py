"""One Redis connection pool shared by every Redis store of a namespace, and the base of those stores."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from core.stores import StoreError
from core.turns import SessionKey

# a Redis that stops answering fails a call instead of hanging it (the URL's query can override both)
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 5.0, 10.0


class RedisLink:
    """The pool, the key prefix (`rp:v2`), the TTL of conversation keys and how long calls keep trying."""

    def __init__(
        self,
        url: str,
        prefix: str,
        ttl: float = 0.0,
        *,
        max_connections: int = 64,
        pool_timeout: float = 10.0,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        # a blocking pool: when every connection is busy a call waits for one (up to pool_timeout)
        # instead of failing at once with "Too many connections"
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=pool_timeout,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=COMMAND_TIMEOUT,
            )
        except ValueError:
            raise StoreError("[memory] redis_url is not a Redis URL; write it like redis://127.0.0.1:6379/0") from None
        self.r = aioredis.Redis.from_pool(pool)
        self.url = url
        self.prefix = prefix
        self.ttl = int(ttl)
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.wall = wall

    def session_key(self, key: SessionKey, part: str) -> str:
        """The Redis key of one part (`turns`, `seq`, `whys`...) of a conversation."""
        return f"{self.prefix}:s:{key}:{part}"


class RedisPart:
    """A store on the shared link; `transient` retries its calls for the link's `retry_seconds`."""

    def __init__(self, link: RedisLink):
        self.link = link
        self._r = link.r
        self._p = link.prefix

    @property
    def clock(self) -> Callable[[], float]:
        """The link's monotonic clock (retry deadlines)."""
        return self.link.clock

    @property
    def retry_seconds(self) -> float:
        """How long a call keeps trying (the link's, which may change after it first answers)."""
        return self.link.retry_seconds
