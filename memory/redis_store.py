"""Conversation store on Redis (redis-py asyncio); keys are versioned under `key_prefix`."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from memory.store import StoreError
from memory.turns import SessionKey, Summary, Turn

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
Method = Callable[Concatenate["RedisStore", P], Coroutine[Any, Any, R]]

# Worth another try: refused or reset connections, timeouts, a server still loading its data
# (BusyLoadingError) and a pool with no free connection are all ConnectionError or TimeoutError.
TRANSIENT: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
FIRST_DELAY, MAX_DELAY = 0.05, 0.5
# a Redis that stops answering fails a call instead of hanging it (the URL's query can override both)
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 5.0, 10.0

# One round trip, atomic: number the turns, append them, trim, refresh the TTL. ARGV[3] names the
# call: a retry whose first attempt landed (only its reply was lost) returns that result instead.
_APPEND = """
local done = redis.call('GET', KEYS[4])
if done then
  local sep = string.find(done, '|', 1, true)
  if string.sub(done, 1, sep - 1) == ARGV[3] then return tonumber(string.sub(done, sep + 1)) end
end
local n = #ARGV - 3
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
-- numbering restarts when the counter expired: a summary (or reset floor) left over would hide turns
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[3]) end
local last = redis.call('INCRBY', KEYS[2], n)
for i = 1, n do
  redis.call('RPUSH', KEYS[1], tostring(last - n + i) .. '|' .. ARGV[i + 3])
end
redis.call('LTRIM', KEYS[1], -maxlen, -1)
redis.call('SET', KEYS[4], ARGV[3] .. '|' .. last)
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  redis.call('EXPIRE', KEYS[4], ttl)
end
return last
"""

# Keep the summary only if it covers more than what is stored (a reset stores a floor).
_SET_SUMMARY = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local upto = tonumber(cjson.decode(cur)['upto'])
  if upto >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

_RESET = """
local seq = redis.call('GET', KEYS[2]) or '0'
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], cjson.encode({text='', upto=tonumber(seq)}))
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[3], ARGV[1]) end
return seq
"""

_ADD_FACTS = """
local limit = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('LREM', KEYS[1], 0, ARGV[i])
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
if limit > 0 then redis.call('LTRIM', KEYS[1], -limit, -1) else redis.call('DEL', KEYS[1]) end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""

# Claimed when the key is new, or already holds this call's token (a retry after a lost reply).
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""


def transient(what: str) -> Callable[[Method[P, R]], Method[P, R]]:
    """Retry the method on transient errors for the store's `retry_seconds`; then StoreError."""

    def wrap(method: Method[P, R]) -> Method[P, R]:
        @functools.wraps(method)
        async def call(self: RedisStore, *args: P.args, **kwargs: P.kwargs) -> R:
            deadline = self.clock() + self.retry_seconds
            delay = FIRST_DELAY
            while True:
                try:
                    return await method(self, *args, **kwargs)
                except TRANSIENT as exc:
                    left = deadline - self.clock()
                    if left <= 0:
                        raise StoreError(
                            f"redis {what} failed: {exc}; check that Redis runs at [memory] redis_url"
                        ) from exc
                    log.debug("redis %s: %s; trying again", what, exc)
                    await asyncio.sleep(min(delay, left))
                    delay = min(delay * 2, MAX_DELAY)
                except RedisError as exc:
                    raise StoreError(f"redis {what} failed: {exc}") from exc

        return call

    return wrap


class RedisStore:
    """Production store: shared by every bot process that points at the same Redis."""

    name = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "rp:v1",
        max_turns: int = 200,
        ttl: float = 0.0,
        *,
        max_connections: int = 64,
        pool_timeout: float = 10.0,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
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
        self._r = aioredis.Redis.from_pool(pool)
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._p = prefix
        self._max = max_turns
        self._ttl = int(ttl)
        self._append = self._r.register_script(_APPEND)
        self._set_summary = self._r.register_script(_SET_SUMMARY)
        self._reset = self._r.register_script(_RESET)
        self._add_facts = self._r.register_script(_ADD_FACTS)
        self._claim = self._r.register_script(_CLAIM)

    def _k(self, key: SessionKey, part: str) -> str:
        return f"{self._p}:s:{key}:{part}"

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Atomically append turns (assigning seq) and trim to the configured length."""
        if not turns:
            return []
        last = await self._append_once(key, turns, uuid.uuid4().hex)
        first = last - len(turns) + 1
        return [Turn.loads(t.dumps(), seq=first + i) for i, t in enumerate(turns)]

    @transient("append")
    async def _append_once(self, key: SessionKey, turns: Sequence[Turn], call_id: str) -> int:
        """The append script; `call_id` is the same on every retry, so the turns land once."""
        keys = [self._k(key, part) for part in ("turns", "seq", "summary", "done")]
        args: list[str | int] = [self._max, self._ttl, call_id, *(t.dumps() for t in turns)]
        return int(await self._append(keys=keys, args=args))

    @transient("read")
    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first."""
        if limit <= 0:
            return []
        raw = await self._r.lrange(self._k(key, "turns"), -limit, -1)
        out = []
        for item in raw:
            seq, _, body = str(item).partition("|")
            out.append(Turn.loads(body, seq=int(seq)))
        return out

    @transient("read")
    async def summary(self, key: SessionKey) -> Summary:
        """The rolling summary (empty when none)."""
        raw = await self._r.get(self._k(key, "summary"))
        if not raw:
            return Summary()
        data = json.loads(raw)
        return Summary(text=data.get("text", ""), upto=int(data.get("upto", 0)))

    @transient("write")
    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Store the summary unless a newer one (or a reset) is already there."""
        body = json.dumps({"text": summary.text, "upto": summary.upto}, ensure_ascii=False)
        done = await self._set_summary(keys=[self._k(key, "summary")], args=[body, summary.upto, self._ttl])
        return bool(done)

    @transient("reset")
    async def reset(self, key: SessionKey) -> None:
        """Forget the session's turns and summary, for everyone in it."""
        keys = [self._k(key, "turns"), self._k(key, "seq"), self._k(key, "summary")]
        await self._reset(keys=keys, args=[self._ttl])

    def _facts_key(self, persona: str, platform: str, user_id: str) -> str:
        return f"{self._p}:facts:{persona}:{platform}:{user_id}"

    @transient("read")
    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """What the persona remembers about a user, oldest first."""
        return [str(f) for f in await self._r.lrange(self._facts_key(persona, platform, user_id), 0, -1)]

    @transient("write")
    async def add_facts(
        self, persona: str, platform: str, user_id: str, facts: Sequence[str], limit: int
    ) -> list[str]:
        """Add new facts (duplicates ignored), keep the newest `limit`, return the list."""
        key = self._facts_key(persona, platform, user_id)
        return list(await self._add_facts(keys=[key], args=[limit, *facts]))

    @transient("write")
    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user."""
        await self._r.delete(self._facts_key(persona, platform, user_id))

    @transient("read")
    async def settings(self, platform: str, channel: str) -> dict[str, str]:
        """Per-channel settings (persona, voice, max_chapter...)."""
        raw = await self._r.hgetall(f"{self._p}:settings:{platform}:{channel}")
        return {str(k): str(v) for k, v in raw.items()}

    @transient("write")
    async def set_setting(self, platform: str, channel: str, name: str, value: str | None) -> None:
        """Set (or with None, remove) one per-channel setting."""
        key = f"{self._p}:settings:{platform}:{channel}"
        if value is None:
            await self._r.hdel(key, name)
        else:
            await self._r.hset(key, name, value)

    async def claim(self, platform: str, bot_id: str, conversation: str, message_id: str, ttl: float) -> bool:
        """True the first time this bot sees the message id in the conversation within `ttl` seconds."""
        # keys of the old shape (seen:<platform>:<id>) are never read again and expire within a day
        key = f"{self._p}:seen:{platform}:{bot_id}:{conversation}:{message_id}"
        return await self._claim_once(key, max(1, int(ttl)), uuid.uuid4().hex)

    @transient("write")
    async def _claim_once(self, key: str, ttl: int, call_id: str) -> bool:
        """The claim script; `call_id` is the same on every retry, so a lost reply is not a duplicate."""
        return bool(await self._claim(keys=[key], args=[call_id, ttl]))

    @transient("ping")
    async def ping(self) -> None:
        """Raise StoreError when the store does not answer."""
        await self._r.ping()

    async def close(self) -> None:
        """Release connections."""
        await self._r.aclose()

    # A sliding window on the server's clock: drop hits older than the window, count, add this one.
    # ARGV: window in ms, limit, a token naming this hit (a retry of a hit that landed is not counted twice).
    _RATE_HIT = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """Count one hit on `key` unless `limit` hits already fell in the last `window_s` seconds."""
        return await self._rate_hit_once(key, max(1, int(window_s * 1000)), limit, uuid.uuid4().hex)

    @transient("rate limit")
    async def _rate_hit_once(self, key: str, window_ms: int, limit: int, token: str) -> bool:
        script = self._r.register_script(self._RATE_HIT)
        return bool(await script(keys=[f"{self._p}:rate:{key}"], args=[window_ms, limit, token]))
