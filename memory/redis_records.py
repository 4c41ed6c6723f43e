"""Fact books, reply contexts, channel settings and counters on Redis.

Keys: `<prefix>:facts:<persona>:<platform>:<user>` (one JSON fact book per member),
`<prefix>:s:<conversation>:whys` (what the last replies were given, newest first; `:why`, the last
one, before it), `<prefix>:settings:<channel>` (a hash) and `<prefix>:rate:<key>` (a sorted set of hits).
"""

from __future__ import annotations

import uuid

from core.conversation import Conversation
from core.stores import FactChange, StoreError
from core.turns import CONTEXTS_KEPT, FactBook, LastContext, SessionKey
from memory.redis_link import RedisLink, RedisPart
from memory.redis_retry import transient

# Compare and set: a user's fact book changes only if nobody changed it since it was read.
_SWAP = """
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RedisFacts(RedisPart):
    """FactStore: a member's book changes by compare and set, so concurrent changes never lose one."""

    def __init__(self, link: RedisLink):
        super().__init__(link)
        self._swap = self._r.register_script(_SWAP)

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


# A reply's context in front of the conversation's list, which keeps the newest ARGV[2] (and expires after ARGV[3] s).
_PUSH_CONTEXT = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


class RedisReplies(RedisPart):
    """ReplyContexts: a list per conversation, newest first, trimmed to CONTEXTS_KEPT."""

    def __init__(self, link: RedisLink):
        super().__init__(link)
        self._push = self._r.register_script(_PUSH_CONTEXT)

    @transient("read")
    async def last_context(self, key: SessionKey) -> LastContext | None:
        """What the conversation's last reply was given (None before the first)."""
        raw = await self._r.lindex(self.link.session_key(key, "whys"), 0) or await self._r.get(self.link.session_key(key, "why"))
        return LastContext.loads(raw) if raw else None

    @transient("read")
    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """What the conversation's last `limit` replies were given, newest first."""
        if limit <= 0:
            return []
        raw = await self._r.lrange(self.link.session_key(key, "whys"), 0, limit - 1)
        if not raw and (last := await self._r.get(self.link.session_key(key, "why"))):
            raw = [last]
        return [LastContext.loads(r) for r in raw]

    @transient("write")
    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """Record what the reply just made was given (the last CONTEXTS_KEPT are kept)."""
        await self._push(keys=[self.link.session_key(key, "whys")], args=[context.dumps(), CONTEXTS_KEPT, self.link.ttl or 0])


class RedisSettings(RedisPart):
    """SettingsStore: one hash per channel."""

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


class RedisCounters(RedisPart):
    """Counters: one sorted set of hits per key, counted on the server's clock."""

    def __init__(self, link: RedisLink):
        super().__init__(link)
        self._rate_hit = self._r.register_script(_RATE_HIT)

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """Count one hit on `key` unless `limit` hits already fell in the last `window_s` seconds."""
        return await self._rate_hit_once(key, max(1, int(window_s * 1000)), limit, uuid.uuid4().hex)

    @transient("rate limit")
    async def _rate_hit_once(self, key: str, window_ms: int, limit: int, token: str) -> bool:
        return bool(await self._rate_hit(keys=[f"{self._p}:rate:{key}"], args=[window_ms, limit, token]))

