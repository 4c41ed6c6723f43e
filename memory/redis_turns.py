"""The turn log and the summaries on Redis; every key under `<prefix>:s:<conversation>:`.

`:turns` (the window, "seq|json" per turn), `:arch` (turns past the window, same form, bounded),
`:seq`, `:summary`, `:floor` (turns up to it were forgotten), `:done` (the last append's call id);
the list of conversations in `<prefix>:sessions` and `<prefix>:turn_count` (memory/redis_index.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import cast

from redis.exceptions import NoScriptError

from core.turns import SessionInfo, SessionKey, SessionPage, Summary, Turn, TurnSpan, parse_session
from memory.redis_index import glob_escape
from memory.redis_link import RedisLink, RedisPart
from memory.redis_retry import transient

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


class RedisTurnLog(RedisPart):
    """TurnLog and Summaries on the link: a conversation's turns and summary change together in one script."""

    def __init__(self, link: RedisLink, max_turns: int = 200, *, archive_turns: int = 10_000, archive_days: float = 0.0):
        super().__init__(link)
        self._max = max_turns
        self._archive_max = archive_turns
        self._archive_seconds = archive_days * 86400
        self._append = self._r.register_script(_APPEND)
        self._since = self._r.register_script(_SINCE)
        self._set_summary = self._r.register_script(_SET_SUMMARY)
        self._reset = self._r.register_script(_RESET)

    def _k(self, key: SessionKey, part: str) -> str:
        return self.link.session_key(key, part)

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
        now = self.link.wall()
        cutoff = now - self._archive_seconds if self._archive_seconds > 0 else 0
        return keys, [self._max, self.link.ttl, call_id, self._archive_max, cutoff, str(key), now, *(t.dumps() for t in turns)]

    @transient("append")
    async def _append_once(self, parts: Sequence[tuple[SessionKey, Sequence[Turn]]], call_ids: Sequence[str]) -> list[int]:
        """The append script once per session (it also notes the session in the console's index), in
        one round trip; each session's last seq. A `call_id` is the same on every retry, so the turns land once.

        The script goes by its sha (a pipeline of Script calls would ask SCRIPT EXISTS first, a second
        round trip); a Redis that forgot it (restarted) gets it loaded again here."""
        calls = [self._append_call(key, turns, call_id) for (key, turns), call_id in zip(parts, call_ids, strict=True)]
        if len(calls) == 1:  # one session: the script alone, with no pipeline around it
            keys, args = calls[0]
            return [int(await self._append(keys=keys, args=args))]
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
        done = await self._set_summary(keys=[self._k(key, "summary")], args=[body, summary.upto, self.link.ttl])
        return bool(done)

    @transient("reset")
    async def reset(self, key: SessionKey) -> None:
        """Forget the session's turns (archived ones too), summary and last context, for everyone in it."""
        keys = [self._k(key, part) for part in ("turns", "seq", "summary", "arch", "floor", "why", "whys")]
        await self._reset(keys=keys, args=[self.link.ttl])

