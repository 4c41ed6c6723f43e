"""Conversation store on Redis (redis-py asyncio); keys are versioned under `key_prefix` (`rp:v2`).

Shapes (v2): per conversation `s:<key>:turns` (the window, "seq|json" per turn), `:arch` (turns past
the window, same form, bounded), `:seq`, `:summary`, `:floor` (turns up to it were forgotten),
`:done`, `:whys` (what the last replies were given, newest first; `:why`, the last one, before it); `facts:<persona>:<platform>:<user>` (one JSON book
per user); `settings:...`, `seen:...`, `rate:...` as in v1; `journal:...` (memory/redis_journal.py).
`migrate` copies a v1 namespace once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from core.conversation import Conversation
from memory.redis_index import backfill, glob_escape
from memory.redis_journal import RedisJournal
from memory.redis_retry import transient
from memory.store import FactChange, StoreError
from memory.turns import (
    CONTEXTS_KEPT,
    Fact,
    FactBook,
    LastContext,
    SessionInfo,
    SessionKey,
    SessionPage,
    Summary,
    Turn,
    TurnSpan,
    parse_session,
)

log = logging.getLogger(__name__)

# a Redis that stops answering fails a call instead of hanging it (the URL's query can override both)
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 5.0, 10.0

# One round trip, atomic: number the turns, append them, move what overflows the window to the
# archive (bounded, and past the retention dropped), refresh the TTL, note the session in the index
# of sessions (the console's list) and count the turns. ARGV[3] names the call: a retry whose first
# attempt landed (only its reply was lost) returns that result instead.
# KEYS: turns, seq, summary, done, arch, floor, sessions index, turn count.
# ARGV: maxlen, ttl, call id, archive max, cutoff, session name, now, turns...
_APPEND = """
local done = redis.call('GET', KEYS[4])
if done then
  local sep = string.find(done, '|', 1, true)
  if string.sub(done, 1, sep - 1) == ARGV[3] then return tonumber(string.sub(done, sep + 1)) end
end
local n = #ARGV - 7
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local archmax = tonumber(ARGV[4])
local cutoff = tonumber(ARGV[5])
-- numbering restarts when the counter expired: a summary, archive or floor left over would clash
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[3], KEYS[5], KEYS[6]) end
local last = redis.call('INCRBY', KEYS[2], n)
for i = 1, n do
  redis.call('RPUSH', KEYS[1], tostring(last - n + i) .. '|' .. ARGV[i + 7])
end
local over = redis.call('LLEN', KEYS[1]) - maxlen
if over > 0 then
  if archmax > 0 then
    local moved = redis.call('LRANGE', KEYS[1], 0, over - 1)
    for i = 1, #moved, 1000 do
      redis.call('RPUSH', KEYS[5], unpack(moved, i, math.min(i + 999, #moved)))
    end
    redis.call('LTRIM', KEYS[5], -archmax, -1)
  else
    redis.call('DEL', KEYS[5])
  end
  redis.call('LTRIM', KEYS[1], -maxlen, -1)
end
if cutoff > 0 then
  for _ = 1, 100 do
    local head = redis.call('LINDEX', KEYS[5], 0)
    if not head then break end
    local ok, body = pcall(cjson.decode, string.sub(head, string.find(head, '|', 1, true) + 1))
    local at = ok and type(body) == 'table' and tonumber(body['at']) or 0
    if at <= 0 or at >= cutoff then break end
    redis.call('LPOP', KEYS[5])
  end
end
redis.call('SET', KEYS[4], ARGV[3] .. '|' .. last)
if ttl > 0 then
  for i = 1, 6 do redis.call('EXPIRE', KEYS[i], ttl) end
end
redis.call('ZADD', KEYS[7], ARGV[7], ARGV[6])
redis.call('INCRBY', KEYS[8], n)
return last
"""

# The archived and window turns newer than ARGV[1], with the last seq and the floor, in one call.
# Both lists hold consecutive seqs in order, so the count wanted from each tail is known.
# KEYS: turns, arch, seq, floor.
_SINCE = """
local after = tonumber(ARGV[1])
local out = {tonumber(redis.call('GET', KEYS[3]) or '0'), tonumber(redis.call('GET', KEYS[4]) or '0')}
for _, key in ipairs({KEYS[2], KEYS[1]}) do
  local len = redis.call('LLEN', key)
  if len > 0 then
    local tail = redis.call('LINDEX', key, -1)
    local want = tonumber(string.sub(tail, 1, string.find(tail, '|', 1, true) - 1)) - after
    if want > 0 then
      if want > len then want = len end
      local items = redis.call('LRANGE', key, -want, -1)
      for i = 1, #items do out[#out + 1] = items[i] end
    end
  end
end
return out
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

# KEYS: turns, seq, summary, arch, floor, why, whys
_RESET = """
local seq = redis.call('GET', KEYS[2]) or '0'
redis.call('DEL', KEYS[1], KEYS[4], KEYS[6], KEYS[7])
redis.call('SET', KEYS[3], cjson.encode({text='', upto=tonumber(seq)}))
redis.call('SET', KEYS[5], seq)
if tonumber(ARGV[1]) > 0 then
  redis.call('EXPIRE', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[5], ARGV[1])
end
return seq
"""

# Compare and set: a user's fact book changes only if nobody changed it since it was read.
_SWAP = """
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

class RedisStore:
    """Production store: shared by every bot process that points at the same Redis."""

    name = "redis"

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
        self._url = url
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.wall = wall
        self._p = prefix
        self._max = max_turns
        self._ttl = int(ttl)
        self._archive_max = archive_turns
        self._archive_seconds = archive_days * 86400
        self._append = self._r.register_script(_APPEND)
        self._since = self._r.register_script(_SINCE)
        self._set_summary = self._r.register_script(_SET_SUMMARY)
        self._reset = self._r.register_script(_RESET)
        self._swap = self._r.register_script(_SWAP)
        self._rate_hit = self._r.register_script(self._RATE_HIT)
        self.journal = RedisJournal(self, self._r, prefix)

    def _k(self, key: SessionKey, part: str) -> str:
        return f"{self._p}:s:{key}:{part}"

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Atomically append turns (assigning seq); those past the window's length move to the archive."""
        if not turns:
            return []
        (last,) = await self._append_once([(key, turns)], [uuid.uuid4().hex])
        first = last - len(turns) + 1
        return [t.stored(first + i) for i, t in enumerate(turns)]

    async def append_each(self, items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> None:
        """Append turns to several sessions in one round trip; each session's part lands atomically, as with `append`."""
        parts = [(key, turns) for key, turns in items if turns]
        if parts:
            await self._append_once(parts, [uuid.uuid4().hex for _ in parts])

    def _append_call(self, key: SessionKey, turns: Sequence[Turn], call_id: str) -> tuple[list[str], list[str | int | float]]:
        """The append script's keys and arguments for one session."""
        keys = [self._k(key, part) for part in ("turns", "seq", "summary", "done", "arch", "floor")]
        keys += [f"{self._p}:sessions", f"{self._p}:turn_count"]
        now = self.wall()
        cutoff = now - self._archive_seconds if self._archive_seconds > 0 else 0
        return keys, [self._max, self._ttl, call_id, self._archive_max, cutoff, str(key), now, *(t.dumps() for t in turns)]

    @transient("append")
    async def _append_once(self, parts: Sequence[tuple[SessionKey, Sequence[Turn]]], call_ids: Sequence[str]) -> list[int]:
        """The append script once per session (it also notes the session in the console's index), in
        one round trip; each session's last seq. A `call_id` is the same on every retry, so the turns land once.

        The script goes by its sha (a pipeline of Script calls would ask SCRIPT EXISTS first, a second
        round trip); a Redis that forgot it (restarted) gets it loaded again here."""
        calls = [self._append_call(key, turns, call_id) for (key, turns), call_id in zip(parts, call_ids, strict=True)]
        async with self._r.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._append.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        if error := next((got for got in results if isinstance(got, Exception) and not isinstance(got, NoScriptError)), None):
            raise error
        return [int(await self._append(keys=keys, args=args)) if isinstance(got, NoScriptError) else int(got)
                for (keys, args), got in zip(calls, results, strict=False)]

    @transient("read")
    async def sessions(self, offset: int, limit: int, query: str = "") -> SessionPage:
        """Sessions most recently active first (those whose key contains `query`), with the totals."""
        index = f"{self._p}:sessions"
        offset, limit = max(0, offset), max(0, limit)
        page: list[tuple[str, float]]
        if query:  # Redis matches the keys as it scans the index; only the matches travel, then are sorted
            pattern = f"*{glob_escape(query)}*"
            found = {str(k): float(a) async for k, a in self._r.zscan_iter(index, match=pattern, count=2000)}  # once each
            matching = sorted(found.items(), key=lambda item: (item[1], item[0]), reverse=True)  # as ZREVRANGE orders
            total, page = len(matching), matching[offset:offset + limit]
        else:
            total = int(await self._r.zcard(index))
            page = cast(list[tuple[str, float]], await self._r.zrevrange(index, offset, offset + limit - 1, withscores=True)) \
                if limit else []
        keys = [(key, float(active)) for raw, active in page if (key := parse_session(str(raw)))]
        counts = await self._r.mget([self._k(key, "seq") for key, _ in keys]) if keys else []
        turns = int(await self._r.get(f"{self._p}:turn_count") or 0)
        items = tuple(SessionInfo(key, active, int(n or 0)) for (key, active), n in zip(keys, counts, strict=True))
        return SessionPage(total, turns, items)

    @transient("read")
    async def turns_since(self, key: SessionKey, after: int) -> TurnSpan:
        """Every stored turn (archive, then window) with seq > `after`, with the floor and the last seq."""
        keys = [self._k(key, part) for part in ("turns", "arch", "seq", "floor")]
        raw = await self._since(keys=keys, args=[max(0, after)])
        turns = []
        for item in raw[2:]:
            seq, _, body = str(item).partition("|")
            if int(seq) > after:
                turns.append(Turn.loads(body, seq=int(seq)))
        return TurnSpan(floor=int(raw[1]), last=int(raw[0]), turns=tuple(turns))

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
        """Forget the session's turns (archived ones too), summary and last context, for everyone in it."""
        keys = [self._k(key, part) for part in ("turns", "seq", "summary", "arch", "floor", "why", "whys")]
        await self._reset(keys=keys, args=[self._ttl])

    def _facts_key(self, persona: str, platform: str, user_id: str) -> str:
        return f"{self._p}:facts:{persona}:{platform}:{user_id}"

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """The texts of every fact the persona knows about a user (all conversations), oldest first."""
        return [f.text for f in (await self.fact_book(persona, platform, user_id)).facts]

    @transient("read")
    async def fact_book(self, persona: str, platform: str, user_id: str) -> FactBook:
        """Every fact about a user, with where and when each was learned."""
        return FactBook.loads(await self._r.get(self._facts_key(persona, platform, user_id)))

    @transient("write")
    async def change_facts(self, persona: str, platform: str, user_id: str, change: FactChange) -> FactBook:
        """Replace a user's facts with `change(current)`, atomically (retried on a concurrent change)."""
        key = self._facts_key(persona, platform, user_id)
        for _ in range(50):
            raw = await self._r.get(key)
            book = change(FactBook.loads(raw))
            if await self._swap(keys=[key], args=[raw or "", book.dumps()]):
                return book
        raise StoreError(f"redis facts of {platform}:{user_id} kept changing; not written")

    @transient("write")
    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user."""
        await self._r.delete(self._facts_key(persona, platform, user_id))

    @transient("read")
    async def last_context(self, key: SessionKey) -> LastContext | None:
        """What the conversation's last reply was given (None before the first)."""
        raw = await self._r.lindex(self._k(key, "whys"), 0) or await self._r.get(self._k(key, "why"))
        return LastContext.loads(raw) if raw else None

    @transient("read")
    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """What the conversation's last `limit` replies were given, newest first."""
        if limit <= 0:
            return []
        raw = await self._r.lrange(self._k(key, "whys"), 0, limit - 1)
        if not raw and (last := await self._r.get(self._k(key, "why"))):
            raw = [last]
        return [LastContext.loads(r) for r in raw]

    @transient("write")
    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """Record what the reply just made was given (the last CONTEXTS_KEPT are kept)."""
        name = self._k(key, "whys")
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.lpush(name, context.dumps())
            pipe.ltrim(name, 0, CONTEXTS_KEPT - 1)
            if self._ttl:
                pipe.expire(name, self._ttl)
            await pipe.execute()

    @transient("read")
    async def settings(self, conversation: Conversation) -> dict[str, str]:
        """Per-channel settings (persona, voice, max_chapter...)."""
        raw = await self._r.hgetall(f"{self._p}:settings:{conversation.key}")
        return {str(k): str(v) for k, v in raw.items()}

    @transient("write")
    async def set_setting(self, conversation: Conversation, name: str, value: str | None) -> None:
        """Set (or with None, remove) one per-channel setting."""
        key = f"{self._p}:settings:{conversation.key}"
        if value is None:
            await self._r.hdel(key, name)
        else:
            await self._r.hset(key, name, value)

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
        return bool(await self._rate_hit(keys=[f"{self._p}:rate:{key}"], args=[window_ms, limit, token]))

    async def index_sessions(self) -> int:
        """Add conversations stored before the session list existed to it (once); how many."""
        try:
            return await backfill(self._r, self._p, self.wall)
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
            raw = aioredis.Redis.from_url(self._url, decode_responses=False, socket_timeout=COMMAND_TIMEOUT)
            copied = 0
            try:
                async for name in raw.scan_iter(match=f"{glob_escape(legacy)}:*", count=1000):
                    copied += await self._copy_v1(raw, name, legacy)
            finally:
                await raw.aclose()
            body = json.dumps({"from": legacy, "keys": copied, "at": self.wall()})
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

