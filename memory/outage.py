"""What every store of one backend shares while that backend is away: the outage, and the exchanges
that wait in memory (bounded) to be written in order when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from core.stores import StoreError
from core.turns import SessionKey, Turn

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outage:
    """Whether the backend is away, what waits for it, and the task that waits for it to answer."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        append: Callable[[SessionKey, Sequence[Turn]], Awaitable[object]],
        *,
        max_pending: int = 1000,
        probe_every: float = 0.5,
    ):
        self._ping = ping
        self._append = append
        self.max_pending = max_pending
        self.probe_every = probe_every
        self.down = False
        self.waiting: deque[tuple[SessionKey, tuple[Turn, ...]]] = deque()
        self._recovery: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False while the backend is away or still catching up."""
        return not (self.down or self.waiting)

    def lost(self, exc: StoreError) -> None:
        """Note the outage and start the task that waits for the backend and writes what waits."""
        if not self.down:
            log.warning(
                "memory: %s; replies go on, new exchanges wait in memory until the store answers again", exc
            )
        self.down = True
        if self._recovery is None:
            self._recovery = asyncio.get_running_loop().create_task(self._recover(), name="memory recovery")

    async def read(self, call: Callable[[], Awaitable[T]], stand_in: T) -> T:
        """`call()`'s answer; `stand_in` while the backend is away (or when the call finds it away)."""
        if self.down:
            return stand_in
        try:
            return await call()
        except StoreError as exc:
            self.lost(exc)
            return stand_in

    async def write(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`'s answer; refused with StoreError while the backend is away or exchanges still wait."""
        if not self.available:
            raise StoreError("memory store is unavailable right now (it is reconnecting); try again in a moment")
        try:
            return await call()
        except StoreError as exc:
            self.lost(exc)
            raise

    def queue(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Keep an exchange to write when the backend is back (behind those already waiting)."""
        if len(self.waiting) >= self.max_pending:
            log.warning(
                "memory: dropped an exchange of %s: %d are already waiting for the store to come back",
                key,
                len(self.waiting),
            )
        else:
            self.waiting.append((key, tuple(turns)))
        return list(turns)  # seq 0: not numbered by the store yet

    async def _recover(self) -> None:
        written = 0
        while self.down or self.waiting:
            try:
                if self.waiting:
                    written += await self._write_oldest()
                else:
                    await self._ping()
                    self.down = False
            except StoreError:
                await asyncio.sleep(self.probe_every)
        self._recovery = None
        log.info("memory: the store answers again; %d waiting exchange(s) written", written)

    async def _write_oldest(self) -> int:
        """1 when the oldest waiting exchange is written, 0 when the store refuses it for good."""
        key, turns = self.waiting[0]
        try:
            await self._append(key, turns)
        except StoreError:
            raise  # still away: it stays first in line
        except Exception as exc:  # not an outage: this exchange cannot be written at all
            self.waiting.popleft()
            log.warning("memory: dropped an exchange of %s that the store refused: %s", key, exc)
            return 0
        self.waiting.popleft()
        self.down = False  # reads come back now; new exchanges still queue until the backlog is written
        return 1

    async def settle(self, grace: float) -> None:
        """Give waiting exchanges `grace` seconds to be written, then name any dropped."""
        task = self._recovery
        if task is not None:
            if self.waiting:
                log.info("memory: writing %d waiting exchange(s) before closing", len(self.waiting))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self.waiting:
            key, _ = self.waiting.popleft()
            log.warning("memory: dropped an exchange of %s at shutdown: the store did not come back in time", key)
