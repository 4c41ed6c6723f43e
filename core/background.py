"""Background work (summaries, facts, voice) that never delays a reply."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Background:
    """Owns fire-and-forget tasks: logs their failures, can wait for them, cancels them on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keys: set[str] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str, key: str = "") -> asyncio.Task[T] | None:
        """Start a task; with a key, skip it while another task with that key is running."""
        if key and key in self._keys:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if key:
            self._keys.add(key)
        task.add_done_callback(lambda t: self._done(t, key))
        return task

    def _done(self, task: asyncio.Task[Any], key: str) -> None:
        self._tasks.discard(task)
        self._keys.discard(key)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("background %s failed: %s", task.get_name(), exc)

    async def drain(self) -> None:
        """Wait until every task (including ones started meanwhile) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self, grace: float = 10.0) -> None:
        """Let running work finish for up to `grace` seconds, then cancel what is left."""
        if self._tasks and grace > 0:
            log.info("waiting up to %.0fs for %d background task(s)", grace, len(self._tasks))
            # asyncio.wait, not a timeout around gather: a gather cut short would cancel the tasks itself,
            # and those would end unnamed in the log
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while self._tasks and (left := deadline - loop.time()) > 0:
                await asyncio.wait(set(self._tasks), timeout=left)
        for task in list(self._tasks):
            log.warning("background %s cancelled at exit", task.get_name())
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
