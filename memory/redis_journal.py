"""The journal on Redis: `journal:owner` and `journal:body` (hashes by message key), `journal:at` (a sorted
set by arrival), `journal:runs` (run -> alive until, wall seconds) and the done marks `seen:<key>`, the
keys that marked messages seen before the journal existed. Every change is one atomic script.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import redis.asyncio as aioredis

from memory.journal import Adopted, Entered, Entry
from memory.redis_retry import transient

log = logging.getLogger(__name__)

# KEYS: seen, owner, body, at, runs. ARGV: key, run, arrived, body, now.
_ENTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'done' end
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if not owner then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
  return 'new'
end
if owner == ARGV[2] then return 'mine' end
if owner ~= '' and tonumber(redis.call('HGET', KEYS[5], owner) or '0') >= tonumber(ARGV[5]) then return 'busy' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 'mine'
"""

# KEYS: seen, owner, body, at. ARGV: key, seconds to keep the mark.
_DONE = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
"""

# KEYS: owner. ARGV: key, run.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], '') end
"""

# Forget runs no longer alive, then take what no live run holds, oldest first; too old: dropped.
# KEYS: owner, body, at, runs. ARGV: run, now, stale before, limit. Returns {{key, body, ...}, {stale key, ...}}.
_ADOPT = """
local live = {}
local runs = redis.call('HGETALL', KEYS[4])
for i = 1, #runs, 2 do
  if tonumber(runs[i + 1]) >= tonumber(ARGV[2]) then live[runs[i]] = true else redis.call('HDEL', KEYS[4], runs[i]) end
end
local taken, stale = {}, {}
local all = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  if #taken >= 2 * tonumber(ARGV[4]) then break end
  local key, at = all[i], tonumber(all[i + 1])
  local owner = redis.call('HGET', KEYS[1], key)
  if not owner then
    redis.call('ZREM', KEYS[3], key)
  elseif owner ~= ARGV[1] and not live[owner] then
    if at < tonumber(ARGV[3]) then
      redis.call('HDEL', KEYS[1], key)
      redis.call('HDEL', KEYS[2], key)
      redis.call('ZREM', KEYS[3], key)
      stale[#stale + 1] = key
    else
      redis.call('HSET', KEYS[1], key, ARGV[1])
      taken[#taken + 1] = key
      taken[#taken + 1] = redis.call('HGET', KEYS[2], key) or ''
    end
  end
end
return {taken, stale}
"""


class Host(Protocol):
    """The store the journal lives in: its clocks and how long a call keeps trying."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def wall(self) -> Callable[[], float]: ...

    @property
    def retry_seconds(self) -> float: ...


class RedisJournal:
    """The Journal contract on the store's connection pool, under its key prefix."""

    def __init__(self, host: Host, client: aioredis.Redis, prefix: str):
        self._host = host
        self._p = prefix
        self._keys = [f"{prefix}:journal:{part}" for part in ("owner", "body", "at", "runs")]
        self._enter = client.register_script(_ENTER)
        self._done = client.register_script(_DONE)
        self._release = client.register_script(_RELEASE)
        self._adopt = client.register_script(_ADOPT)
        self._r = client

    @property
    def clock(self) -> Callable[[], float]:
        """The store's monotonic clock (retry deadlines)."""
        return self._host.clock

    @property
    def retry_seconds(self) -> float:
        """How long a call keeps trying (the store's, which may change after it first answers)."""
        return self._host.retry_seconds

    def _seen(self, key: str) -> str:
        return f"{self._p}:seen:{key}"

    @transient("journal")
    async def enter(self, entry: Entry, run: str) -> Entered:
        """Journal a received message for `run` unless it is known."""
        owner, body, at, runs = self._keys
        args: list[str | float] = [entry.key, run, entry.at, entry.dumps(), self._host.wall()]
        return cast(Entered, str(await self._enter(keys=[self._seen(entry.key), owner, body, at, runs], args=args)))

    @transient("journal")
    async def done(self, keys: Sequence[str], keep: float) -> None:
        """Mark messages answered: out of the journal, and seen for `keep` seconds."""
        for key in keys:
            await self._done(keys=[self._seen(key), *self._keys[:3]], args=[key, max(1, int(keep))])

    @transient("journal")
    async def release(self, key: str, run: str) -> None:
        """Let go of a message `run` holds; the next sweep adopts it."""
        await self._release(keys=[self._keys[0]], args=[key, run])

    @transient("journal")
    async def alive(self, run: str, seconds: float) -> None:
        """Say that `run` is alive for the next `seconds`."""
        await self._r.hset(self._keys[3], run, str(self._host.wall() + seconds))

    @transient("journal")
    async def gone(self, run: str) -> None:
        """Say that `run` has stopped."""
        await self._r.hdel(self._keys[3], run)

    @transient("journal")
    async def adopt(self, run: str, stale_before: float, limit: int, keep: float) -> Adopted:
        """Take over up to `limit` messages held by no live run, oldest first; older ones are marked done."""
        taken, stale = await self._adopt(keys=self._keys, args=[run, self._host.wall(), stale_before, limit])
        for key in stale:
            await self._r.set(self._seen(str(key)), "1", ex=max(1, int(keep)))
        entries = []
        for i in range(0, len(taken), 2):
            try:
                entries.append(Entry.loads(str(taken[i + 1])))
            except ValueError as exc:  # written by something else: nothing to answer
                log.warning("journal: an entry cannot be read (%s); dropped", exc)
        return Adopted(tuple(entries), len(stale))
