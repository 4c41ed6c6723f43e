"""A conversation store that keeps the bot answering while the real store is away.

Exchanges that cannot be written wait in memory (bounded) and are written in order when the
store is back; reads fall back to what is known (settings seen last, empty history) meanwhile.
A conversation's settings read less than SETTINGS_FRESH seconds ago are not read again: a busy
group costs one read a second, and a change made through another process shows within that time
(one made through this store shows at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from core.conversation import Conversation
from memory.resilient_journal import ResilientJournal
from memory.store import ConversationStore, FactChange, StoreError
from memory.turns import FactBook, LastContext, SessionKey, SessionPage, Summary, Turn, TurnSpan

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
SETTINGS_FRESH = 1.0  # seconds a conversation's settings, once read, are taken as they are


class ResilientStore:
    """Wraps any ConversationStore; callers see the same contract, with outages absorbed."""

    def __init__(
        self,
        inner: ConversationStore,
        *,
        max_pending: int = 1000,
        grace: float = 5.0,
        probe_every: float = 0.5,
        remember: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.inner = inner
        self.name = inner.name
        self.max_pending = max_pending
        self.grace = grace
        self.probe_every = probe_every
        self._remember = remember
        self._pending: deque[tuple[SessionKey, tuple[Turn, ...]]] = deque()
        self._down = False
        self._recovery: asyncio.Task[None] | None = None
        self._settings: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._read_at: dict[str, float] = {}  # when each conversation's settings were last read
        self.clock = clock
        self.journal = ResilientJournal(inner.journal, lambda: self._down, self._lost, remember)

    @property
    def pending(self) -> int:
        """Exchanges waiting to be written."""
        return len(self._pending)

    @property
    def available(self) -> bool:
        """False while the store is away or still catching up."""
        return not (self._down or self._pending)

    def _lost(self, exc: StoreError) -> None:
        """Note the outage and start the task that waits for the store and writes what waits."""
        if not self._down:
            log.warning(
                "memory: %s; replies go on, new exchanges wait in memory until the store answers again", exc
            )
        self._down = True
        if self._recovery is None:
            self._recovery = asyncio.get_running_loop().create_task(self._recover(), name="memory recovery")

    async def _recover(self) -> None:
        written = 0
        while self._down or self._pending:
            try:
                if self._pending:
                    written += await self._write_oldest()
                else:
                    await self.inner.ping()
                    self._down = False
            except StoreError:
                await asyncio.sleep(self.probe_every)
        self._recovery = None
        log.info("memory: the store answers again; %d waiting exchange(s) written", written)

    async def _write_oldest(self) -> int:
        """1 when the oldest waiting exchange is written, 0 when the store refuses it for good."""
        key, turns = self._pending[0]
        try:
            await self.inner.append(key, turns)
        except StoreError:
            raise  # still away: it stays first in line
        except Exception as exc:  # not an outage: this exchange cannot be written at all
            self._pending.popleft()
            log.warning("memory: dropped an exchange of %s that the store refused: %s", key, exc)
            return 0
        self._pending.popleft()
        self._down = False  # reads come back now; new exchanges still queue until the backlog is written
        return 1

    def _queue(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        if len(self._pending) >= self.max_pending:
            log.warning(
                "memory: dropped an exchange of %s: %d are already waiting for the store to come back",
                key,
                len(self._pending),
            )
        else:
            self._pending.append((key, tuple(turns)))
        return list(turns)  # seq 0: not numbered by the store yet

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Append through the store; while it is away, queue the turns (returned with seq 0)."""
        if not turns:
            return []
        if self.available:
            try:
                return await self.inner.append(key, turns)
            except StoreError as exc:
                self._lost(exc)
        # behind anything already waiting, so a conversation's turns keep their order
        return self._queue(key, turns)

    async def append_each(self, items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> None:
        """Append through the store in one round trip; while it is away, queue each session's turns."""
        if self.available:
            try:
                await self.inner.append_each(items)
                return
            except StoreError as exc:
                self._lost(exc)
        for key, turns in items:
            if turns:
                self._queue(key, turns)

    async def turns_since(self, key: SessionKey, after: int) -> TurnSpan | None:
        """Stored turns newer than `after`; None while the store is away (recall keeps what it has)."""
        if self._down:
            return None
        try:
            return await self.inner.turns_since(key, after)
        except StoreError as exc:
            self._lost(exc)
            return None

    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """The last turns; empty while the store is away."""
        if self._down:
            return []
        try:
            return await self.inner.recent(key, limit)
        except StoreError as exc:
            self._lost(exc)
            return []

    async def summary(self, key: SessionKey) -> Summary:
        """The rolling summary; empty while the store is away."""
        if self._down:
            return Summary()
        try:
            return await self.inner.summary(key)
        except StoreError as exc:
            self._lost(exc)
            return Summary()

    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Store the summary; False (not stored, to be redone later) while the store is away."""
        if self._down:
            return False
        try:
            return await self.inner.set_summary(key, summary)
        except StoreError as exc:
            self._lost(exc)
            return False

    async def reset(self, key: SessionKey) -> None:
        """Forget the session; refused while the store is away or exchanges still wait."""
        self._refuse_while_away()
        await self._passing(self.inner.reset(key))

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """What the persona remembers about a user; empty while the store is away."""
        if self._down:
            return []
        try:
            return await self.inner.facts(persona, platform, user_id)
        except StoreError as exc:
            self._lost(exc)
            return []

    async def fact_book(self, persona: str, platform: str, user_id: str) -> FactBook:
        """Every fact about a user; empty while the store is away."""
        if self._down:
            return FactBook()
        try:
            return await self.inner.fact_book(persona, platform, user_id)
        except StoreError as exc:
            self._lost(exc)
            return FactBook()

    async def change_facts(self, persona: str, platform: str, user_id: str, change: FactChange) -> FactBook:
        """Change a user's facts; refused while the store is away."""
        self._refuse_while_away()
        return await self._passing(self.inner.change_facts(persona, platform, user_id, change))

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user; refused while the store is away."""
        self._refuse_while_away()
        await self._passing(self.inner.forget_user(persona, platform, user_id))

    async def last_context(self, key: SessionKey) -> LastContext | None:
        """What the last reply was given; None while the store is away."""
        if self._down:
            return None
        try:
            return await self.inner.last_context(key)
        except StoreError as exc:
            self._lost(exc)
            return None

    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """What the recent replies were given; none while the store is away."""
        if self._down:
            return []
        try:
            return await self.inner.contexts(key, limit)
        except StoreError as exc:
            self._lost(exc)
            return []

    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """Record what the reply was given; while the store is away it is not kept (only /why misses it)."""
        if not self.available:
            return
        try:
            await self.inner.set_last_context(key, context)
        except StoreError as exc:
            self._lost(exc)

    async def settings(self, conversation: Conversation) -> dict[str, str]:
        """Per-channel settings (read again after SETTINGS_FRESH); while the store is away, the ones
        this process saw last."""
        where = conversation.key
        now = self.clock()
        if not self._down and now - self._read_at.get(where, float("-inf")) >= SETTINGS_FRESH:
            try:
                found = await self.inner.settings(conversation)
            except StoreError as exc:
                self._lost(exc)
            else:
                self._keep(self._settings, where, found)
                if len(self._read_at) > self._remember:
                    self._read_at = {k: at for k, at in self._read_at.items() if now - at < SETTINGS_FRESH}
                self._read_at[where] = now
                return dict(found)
        return dict(self._settings.get(where, {}))

    async def set_setting(self, conversation: Conversation, name: str, value: str | None) -> None:
        """Set one per-channel setting; refused while the store is away."""
        self._refuse_while_away()
        try:
            await self._passing(self.inner.set_setting(conversation, name, value))
        finally:
            self._read_at.pop(conversation.key, None)  # read again next time, whether or not it landed
        self._settings.pop(conversation.key, None)

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """The store's shared count; while it is away, every hit is let through."""
        if self._down:
            return True
        try:
            return await self.inner.rate_hit(key, window_s, limit)
        except StoreError as exc:
            self._lost(exc)
            return True

    async def sessions(self, offset: int, limit: int, query: str = "") -> SessionPage:
        """The inner store's sessions; an outage is an error here (a list has no sensible stand-in)."""
        self._refuse_while_away()
        return await self._passing(self.inner.sessions(offset, limit, query))

    async def ping(self) -> None:
        """Raise StoreError when the store does not answer."""
        await self.inner.ping()

    async def close(self) -> None:
        """Give waiting exchanges `grace` seconds to be written, name any dropped, then close the store."""
        task = self._recovery
        if task is not None:
            if self._pending:
                log.info("memory: writing %d waiting exchange(s) before closing", len(self._pending))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self.grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._pending:
            key, _ = self._pending.popleft()
            log.warning("memory: dropped an exchange of %s at shutdown: the store did not come back in time", key)
        await self.inner.close()

    def _refuse_while_away(self) -> None:
        if not self.available:
            raise StoreError("memory store is unavailable right now (it is reconnecting); try again in a moment")

    async def _passing(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except StoreError as exc:
            self._lost(exc)
            raise

    def _keep(self, table: OrderedDict[K, V], key: K, value: V) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._remember:
            table.popitem(last=False)
