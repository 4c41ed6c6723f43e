"""Model request slots shared fairly: replies first, background work only when no reply waits."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

Priority = Literal["reply", "background"]
_ORDER: tuple[Priority, ...] = ("reply", "background")


class Slots:
    """A semaphore with two queues; a freed slot goes to a waiting reply before any background job.

    Background jobs also keep one slot free for replies when there is more than one, so a reply
    arriving while summaries run never waits for them.
    """

    def __init__(self, size: int):
        self.size = size
        self.busy = 0
        self.busy_background = 0
        self._waiting: dict[Priority, deque[asyncio.Future[None]]] = {"reply": deque(), "background": deque()}

    @property
    def queued(self) -> int:
        """Replies waiting for a slot."""
        return len(self._waiting["reply"])

    def _may_start(self, priority: Priority) -> bool:
        if self.busy >= self.size:
            return False
        if priority == "reply":
            return True
        reserve = 1 if self.size > 1 else 0
        return not self._waiting["reply"] and self.busy_background < self.size - reserve

    @asynccontextmanager
    async def take(self, priority: Priority) -> AsyncIterator[None]:
        """Hold one slot for the block."""
        if not (self._may_start(priority) and not self._waiting[priority]):
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[priority].append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiting[priority]:
                    self._waiting[priority].remove(waiter)
                elif not waiter.cancelled():  # granted just as we were cancelled: pass it on
                    self._release(priority)
                raise
        else:
            self._claim(priority)
        try:
            yield
        finally:
            self._release(priority)

    def _claim(self, priority: Priority) -> None:
        self.busy += 1
        if priority == "background":
            self.busy_background += 1

    def _release(self, priority: Priority) -> None:
        self.busy -= 1
        if priority == "background":
            self.busy_background -= 1
        self._wake()

    def _wake(self) -> None:
        for kind in _ORDER:
            queue = self._waiting[kind]
            while queue and self._may_start(kind):
                waiter = queue.popleft()
                if waiter.done():
                    continue
                self._claim(kind)
                waiter.set_result(None)
