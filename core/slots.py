"""Model request slots shared fairly: replies first, background work only when no reply waits.

Waiting replies are served round-robin across conversations (each a queue of its own, first come
first served within it), so a flood in one conversation delays that conversation, not the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

Priority = Literal["reply", "background"]
_ORDER: tuple[Priority, ...] = ("reply", "background")


class _Line:
    """Waiters taken in turn across queues: each queue's oldest first, the queues round-robin."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}  # insertion order is the turn order

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def __bool__(self) -> bool:
        return bool(self._queues)

    def add(self, queue: str, waiter: asyncio.Future[None]) -> None:
        self._queues.setdefault(queue, deque()).append(waiter)

    def remove(self, queue: str, waiter: asyncio.Future[None]) -> bool:
        """Take a waiter out (one given up); False when it was not waiting any more."""
        line = self._queues.get(queue)
        if line is None or waiter not in line:
            return False
        line.remove(waiter)
        if not line:
            del self._queues[queue]
        return True

    def pop(self) -> asyncio.Future[None]:
        """The next waiter: the front of the queue whose turn it is; that queue goes to the back."""
        queue = next(iter(self._queues))
        line = self._queues.pop(queue)
        waiter = line.popleft()
        if line:
            self._queues[queue] = line
        return waiter


class Slots:
    """A semaphore with two lines; a freed slot goes to a waiting reply before any background job.

    Background jobs also keep one slot free for replies when there is more than one, so a reply
    arriving while summaries run never waits for them.
    """

    def __init__(self, size: int):
        self.size = size
        self.busy = 0
        self.busy_background = 0
        self._waiting: dict[Priority, _Line] = {"reply": _Line(), "background": _Line()}

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
    async def take(self, priority: Priority, queue: str = "") -> AsyncIterator[None]:
        """Hold one slot for the block; `queue` names the conversation it waits in line for."""
        if not (self._may_start(priority) and not self._waiting[priority]):
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[priority].add(queue, waiter)
            try:
                await waiter
            except BaseException:
                if not self._waiting[priority].remove(queue, waiter) and not waiter.cancelled():
                    self._release(priority)  # granted just as we were cancelled: pass it on
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
            line = self._waiting[kind]
            while line and self._may_start(kind):
                waiter = line.pop()
                if waiter.done():
                    continue
                self._claim(kind)
                waiter.set_result(None)
