"""Conversation store on Redis (redis-py asyncio); keys are versioned under `key_prefix`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from memory.store import StoreError
from memory.turns import SessionKey, Summary, Turn

# One round trip, atomic: number the turns, append them, trim, refresh the TTL.
_APPEND = """
local n = #ARGV - 2
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
-- numbering restarts when the counter expired: a summary (or reset floor) left over would hide turns
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[3]) end
local last = redis.call('INCRBY', KEYS[2], n)
for i = 1, n do
  redis.call('RPUSH', KEYS[1], tostring(last - n + i) .. '|' .. ARGV[i + 2])
end
redis.call('LTRIM', KEYS[1], -maxlen, -1)
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
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


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """Any Redis failure surfaces as StoreError (one line for the user, no traceback)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreError(f"redis {what} failed: {exc}") from exc


class RedisStore:
    """Production store: shared by every bot process that points at the same Redis."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "rp:v1", max_turns: int = 200, ttl: float = 0.0):
        self._r = aioredis.Redis.from_url(url, decode_responses=True)
        self._p = prefix
        self._max = max_turns
        self._ttl = int(ttl)
        self._append = self._r.register_script(_APPEND)
        self._set_summary = self._r.register_script(_SET_SUMMARY)
        self._reset = self._r.register_script(_RESET)
        self._add_facts = self._r.register_script(_ADD_FACTS)

    def _k(self, key: SessionKey, part: str) -> str:
        return f"{self._p}:s:{key}:{part}"

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Atomically append turns (assigning seq) and trim to the configured length."""
        if not turns:
            return []
        keys = [self._k(key, "turns"), self._k(key, "seq"), self._k(key, "summary")]
        args: list[str | int] = [self._max, self._ttl, *(t.dumps() for t in turns)]
        with _errors("append"):
            last = int(await self._append(keys=keys, args=args))
        first = last - len(turns) + 1
        return [Turn.loads(t.dumps(), seq=first + i) for i, t in enumerate(turns)]

    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first."""
        if limit <= 0:
            return []
        with _errors("read"):
            raw = await self._r.lrange(self._k(key, "turns"), -limit, -1)
        out = []
        for item in raw:
            seq, _, body = str(item).partition("|")
            out.append(Turn.loads(body, seq=int(seq)))
        return out

    async def summary(self, key: SessionKey) -> Summary:
        """The rolling summary (empty when none)."""
        with _errors("read"):
            raw = await self._r.get(self._k(key, "summary"))
        if not raw:
            return Summary()
        data = json.loads(raw)
        return Summary(text=data.get("text", ""), upto=int(data.get("upto", 0)))

    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Store the summary unless a newer one (or a reset) is already there."""
        body = json.dumps({"text": summary.text, "upto": summary.upto}, ensure_ascii=False)
        with _errors("write"):
            done = await self._set_summary(keys=[self._k(key, "summary")], args=[body, summary.upto, self._ttl])
        return bool(done)

    async def reset(self, key: SessionKey) -> None:
        """Forget the session's turns and summary, for everyone in it."""
        keys = [self._k(key, "turns"), self._k(key, "seq"), self._k(key, "summary")]
        with _errors("reset"):
            await self._reset(keys=keys, args=[self._ttl])

    def _facts_key(self, persona: str, platform: str, user_id: str) -> str:
        return f"{self._p}:facts:{persona}:{platform}:{user_id}"

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """What the persona remembers about a user, oldest first."""
        with _errors("read"):
            return [str(f) for f in await self._r.lrange(self._facts_key(persona, platform, user_id), 0, -1)]

    async def add_facts(
        self, persona: str, platform: str, user_id: str, facts: Sequence[str], limit: int
    ) -> list[str]:
        """Add new facts (duplicates ignored), keep the newest `limit`, return the list."""
        key = self._facts_key(persona, platform, user_id)
        with _errors("write"):
            return list(await self._add_facts(keys=[key], args=[limit, *facts]))

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user."""
        with _errors("write"):
            await self._r.delete(self._facts_key(persona, platform, user_id))

    async def settings(self, platform: str, channel: str) -> dict[str, str]:
        """Per-channel settings (persona, voice, max_chapter...)."""
        with _errors("read"):
            raw = await self._r.hgetall(f"{self._p}:settings:{platform}:{channel}")
        return {str(k): str(v) for k, v in raw.items()}

    async def set_setting(self, platform: str, channel: str, name: str, value: str | None) -> None:
        """Set (or with None, remove) one per-channel setting."""
        key = f"{self._p}:settings:{platform}:{channel}"
        with _errors("write"):
            if value is None:
                await self._r.hdel(key, name)
            else:
                await self._r.hset(key, name, value)

    async def claim(self, platform: str, message_id: str, ttl: float) -> bool:
        """True the first time a message id is seen within `ttl` seconds (no double replies)."""
        key = f"{self._p}:seen:{platform}:{message_id}"
        with _errors("write"):
            return bool(await self._r.set(key, "1", nx=True, ex=max(1, int(ttl))))

    async def ping(self) -> None:
        """Raise StoreError when the store does not answer."""
        with _errors("ping"):
            await self._r.ping()

    async def close(self) -> None:
        """Release connections."""
        await self._r.aclose()
