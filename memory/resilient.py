"""Stores that keep the bot answering while the real ones are away, one wrapper per store over a
shared Outage (memory/outage.py).

Exchanges that cannot be written wait in memory (bounded) and are written in order when the
backend is back; reads fall back to what is known (settings seen last, empty history) meanwhile.
A conversation's settings read less than SETTINGS_FRESH seconds ago are not read again: a busy
group costs one read a second, and a change made through another process shows within that time
(one made through this store shows at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from core.conversation import Conversation
from core.stores import Counters, FactChange, FactStore, ReplyContexts, SettingsStore, StoreError, Summaries, TurnLog
from core.turns import FactBook, LastContext, SessionKey, SessionPage, Summary, Turn, TurnSpan
from memory.outage import Outage
from memory.resilient_journal import ResilientJournal
from memory.store import Stores

SETTINGS_FRESH = 1.0  # seconds a conversation's settings, once read, are taken as they are


class ResilientTurnLog:
    """Appends wait in memory while the backend is away (returned with seq 0); reads find nothing."""

    def __init__(self, inner: TurnLog, outage: Outage):
        self.inner, self.outage = inner, outage

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Append through the store; while it is away, queue the turns (returned with seq 0)."""
        if not turns:
            return []
        if self.outage.available:
            try:
                return await self.inner.append(key, turns)
            except StoreError as exc:
                self.outage.lost(exc)
        # behind anything already waiting, so a conversation's turns keep their order
        return self.outage.queue(key, turns)

    async def append_each(self, items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> None:
        """Append through the store in one round trip; while it is away, queue each session's turns."""
        if self.outage.available:
            try:
                await self.inner.append_each(items)
                return
            except StoreError as exc:
                self.outage.lost(exc)
        for key, turns in items:
            if turns:
                self.outage.queue(key, turns)

    async def turns_since(self, key: SessionKey, after: int) -> TurnSpan | None:
        """Stored turns newer than `after`; None while the store is away (recall keeps what it has)."""
        return await self.outage.read(lambda: self.inner.turns_since(key, after), None)

    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """The last turns; empty while the store is away."""
        return await self.outage.read(lambda: self.inner.recent(key, limit), [])

    async def reset(self, key: SessionKey) -> None:
        """Forget the session; refused while the store is away or exchanges still wait."""
        await self.outage.write(lambda: self.inner.reset(key))

    async def sessions(self, offset: int, limit: int, query: str = "") -> SessionPage:
        """The inner store's sessions; an outage is an error here (a list has no sensible stand-in)."""
        return await self.outage.write(lambda: self.inner.sessions(offset, limit, query))


class ResilientSummaries:
    """The summary reads empty and is not stored (to be redone later) while the backend is away."""

    def __init__(self, inner: Summaries, outage: Outage):
        self.inner, self.outage = inner, outage

    async def summary(self, key: SessionKey) -> Summary:
        """The rolling summary; empty while the store is away."""
        return await self.outage.read(lambda: self.inner.summary(key), Summary())

    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Store the summary; False (not stored, to be redone later) while the store is away."""
        return await self.outage.read(lambda: self.inner.set_summary(key, summary), False)


class ResilientFacts:
    """Facts read empty while the backend is away; changes are refused."""

    def __init__(self, inner: FactStore, outage: Outage):
        self.inner, self.outage = inner, outage

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """What the persona remembers about a user; empty while the store is away."""
        return await self.outage.read(lambda: self.inner.facts(persona, platform, user_id), [])

    async def fact_book(self, persona: str, platform: str, user_id: str) -> FactBook:
        """Every fact about a user; empty while the store is away."""
        return await self.outage.read(lambda: self.inner.fact_book(persona, platform, user_id), FactBook())

    async def change_facts(self, persona: str, platform: str, user_id: str, change: FactChange) -> FactBook:
        """Change a user's facts; refused while the store is away."""
        return await self.outage.write(lambda: self.inner.change_facts(persona, platform, user_id, change))

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user; refused while the store is away."""
        await self.outage.write(lambda: self.inner.forget_user(persona, platform, user_id))


class ResilientReplies:
    """What replies were given is neither read nor kept while the backend is away (only /why misses it).

    A record is written behind its reply: the reply goes out while it is written, records of one
    conversation are written in order, and a read of that conversation waits for its writes.
    """

    def __init__(self, inner: ReplyContexts, outage: Outage):
        self.inner, self.outage = inner, outage
        self._writing: dict[SessionKey, asyncio.Future[None]] = {}  # per conversation: its last write

    async def last_context(self, key: SessionKey) -> LastContext | None:
        """What the last reply was given; None while the store is away."""
        await self._written(key)
        return await self.outage.read(lambda: self.inner.last_context(key), None)

    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """What the recent replies were given; none while the store is away."""
        await self._written(key)
        return await self.outage.read(lambda: self.inner.contexts(key, limit), [])

    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """Record what the reply was given (the write goes on behind the caller); while the store is
        away it is not kept."""
        if not self.outage.available:
            return
        writing = asyncio.ensure_future(self._write(self._writing.get(key), key, context))
        self._writing[key] = writing
        writing.add_done_callback(lambda done: self._writing.pop(key) if self._writing.get(key) is done else None)

    async def settle(self) -> None:
        """Every record on its way is written (or given up)."""
        await asyncio.gather(*self._writing.values(), return_exceptions=True)

    async def _write(self, before: asyncio.Future[None] | None, key: SessionKey, context: LastContext) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        try:
            await self.inner.set_last_context(key, context)
        except StoreError as exc:
            self.outage.lost(exc)

    async def _written(self, key: SessionKey) -> None:
        if (writing := self._writing.get(key)) is not None:
            await asyncio.gather(writing, return_exceptions=True)


class ResilientSettings:
    """Settings read at most once per SETTINGS_FRESH; while the backend is away, the ones seen last."""

    def __init__(self, inner: SettingsStore, outage: Outage, remember: int = 4096,
                 clock: Callable[[], float] = time.monotonic):
        self.inner, self.outage = inner, outage
        self._remember = remember
        self._settings: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._read_at: dict[str, float] = {}  # when each conversation's settings were last read
        self.clock = clock

    async def settings(self, conversation: Conversation) -> dict[str, str]:
        """Per-channel settings (read again after SETTINGS_FRESH); while the store is away, the ones
        this process saw last."""
        where = conversation.key
        now = self.clock()
        if not self.outage.down and now - self._read_at.get(where, float("-inf")) >= SETTINGS_FRESH:
            try:
                found = await self.inner.settings(conversation)
            except StoreError as exc:
                self.outage.lost(exc)
            else:
                self._settings[where] = found
                self._settings.move_to_end(where)
                while len(self._settings) > self._remember:
                    self._settings.popitem(last=False)
                if len(self._read_at) > self._remember:
                    self._read_at = {k: at for k, at in self._read_at.items() if now - at < SETTINGS_FRESH}
                self._read_at[where] = now
                return dict(found)
        return dict(self._settings.get(where, {}))

    async def set_setting(self, conversation: Conversation, name: str, value: str | None) -> None:
        """Set one per-channel setting; refused while the store is away."""
        try:
            await self.outage.write(lambda: self.inner.set_setting(conversation, name, value))
        finally:
            self._read_at.pop(conversation.key, None)  # read again next time, whether or not it landed
        self._settings.pop(conversation.key, None)


class ResilientCounters:
    """While the backend is away, every hit is let through."""

    def __init__(self, inner: Counters, outage: Outage):
        self.inner, self.outage = inner, outage

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """The store's shared count; True while it is away."""
        return await self.outage.read(lambda: self.inner.rate_hit(key, window_s, limit), True)


class ResilientStore(Stores):
    """Every store of a backend wrapped over one Outage; callers see the same contracts, outages absorbed."""

    def __init__(
        self,
        inner: Stores,
        *,
        max_pending: int = 1000,
        grace: float = 5.0,
        probe_every: float = 0.5,
        remember: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.inner = inner
        self.grace = grace
        self.outage = outage = Outage(inner.ping, inner.turns.append, max_pending=max_pending, probe_every=probe_every)
        self._replies = ResilientReplies(inner.replies, outage)
        super().__init__(
            inner.name,
            ResilientTurnLog(inner.turns, outage),
            ResilientSummaries(inner.summaries, outage),
            ResilientFacts(inner.facts_store, outage),
            self._replies,
            ResilientSettings(inner.channel_settings, outage, remember, clock),
            ResilientCounters(inner.counters, outage),
            ResilientJournal(inner.journal, lambda: outage.down, outage.lost, remember),
            inner.ping,
            self._settle_and_close,
        )

    @property
    def pending(self) -> int:
        """Exchanges waiting to be written."""
        return len(self.outage.waiting)

    @property
    def available(self) -> bool:
        """False while the store is away or still catching up."""
        return self.outage.available

    async def _settle_and_close(self) -> None:
        """Give waiting exchanges `grace` seconds to be written, name any dropped, then close the store."""
        await self.outage.settle(self.grace)
        with contextlib.suppress(TimeoutError):  # what replies were given: only /why would miss one
            await asyncio.wait_for(self._replies.settle(), self.grace)
        await self.inner.close()
