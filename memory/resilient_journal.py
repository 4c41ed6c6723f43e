"""The journal while the store is away: this process's own memory of what it answered.

A message that arrives during an outage cannot be journaled: it is answered at once, and a crash
before the answer loses it (as any message did before the journal). Runs and adoption wait for the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from core.stores import StoreError
from memory.journal import Adopted, Entered, Entry, Journal


class ResilientJournal:
    """Wraps a store's Journal; while the store is away, done marks are kept in memory (bounded)."""

    def __init__(self, inner: Journal, away: Callable[[], bool], lost: Callable[[StoreError], None], remember: int = 4096):
        self.inner = inner
        self._away = away
        self._lost = lost
        self._remember = remember
        self._done: OrderedDict[str, None] = OrderedDict()

    async def enter(self, entry: Entry, run: str) -> Entered:
        """The store's answer; while it is away, "done" only for what this process answered."""
        if not self._away():
            try:
                return await self.inner.enter(entry, run)
            except StoreError as exc:
                self._lost(exc)
        return "done" if entry.key in self._done else "new"

    async def done(self, keys: Sequence[str], keep: float) -> None:
        """Marked in the store; while it is away, remembered here."""
        for key in keys:
            self._done[key] = None
            self._done.move_to_end(key)
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
        if not self._away():
            try:
                await self.inner.done(keys, keep)
            except StoreError as exc:
                self._lost(exc)

    async def release(self, key: str, run: str) -> None:
        """Let go of a message; nothing while the store is away."""
        await self._passing(lambda: self.inner.release(key, run))

    async def alive(self, run: str, seconds: float) -> None:
        """Say the run is alive; nothing while the store is away."""
        await self._passing(lambda: self.inner.alive(run, seconds))

    async def gone(self, run: str) -> None:
        """Say the run stopped; nothing while the store is away."""
        await self._passing(lambda: self.inner.gone(run))

    async def adopt(self, run: str, stale_before: float, limit: int, keep: float) -> Adopted:
        """What no live run holds; nothing while the store is away."""
        if self._away():
            return Adopted()
        try:
            return await self.inner.adopt(run, stale_before, limit, keep)
        except StoreError as exc:
            self._lost(exc)
            return Adopted()

    async def _passing(self, call: Callable[[], Awaitable[None]]) -> None:
        if self._away():
            return
        try:
            await call()
        except StoreError as exc:
            self._lost(exc)
