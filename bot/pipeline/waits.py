"""Who in a conversation still waits for the character, and the one busy notice per wait.

A conversation's wait starts with the first message that has to wait and ends when none waits any
more (each message's wait ends when its model request is sent or its answer is ready). When a
message has waited `[bot] busy_notice_seconds`, the character posts one short line quoting it; the
real answer still follows. The clock is injected; waiting uses the event loop's timers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bot import metrics
from core.messages import Incoming, Reply
from core.outlet import Outlet

log = logging.getLogger(__name__)

Compose = Callable[[Incoming], Awaitable[Reply | None]]  # the busy line for a message, None: not for this one


@dataclass(eq=False)
class _Waiting:
    msg: Incoming
    arrived: float
    outlet: Outlet | None
    tried: bool = False  # looked at for a notice already (or never eligible)


@dataclass(eq=False)
class _Line:
    waiting: list[_Waiting] = field(default_factory=list)
    noticed: bool = False
    timer: asyncio.TimerHandle | None = None


class Waits:
    """Per conversation: the messages still waiting, and a timer for the busy notice."""

    def __init__(self, seconds: float, clock: Callable[[], float], compose: Compose):
        self.seconds = seconds
        self.clock = clock
        self.compose = compose
        self._lines: dict[str, _Line] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def arrive(self, key: str, msg: Incoming, arrived: float, outlet: Outlet | None) -> None:
        """A message starts waiting (only one that someone wrote and that can be answered gets a notice)."""
        if self.seconds <= 0:
            return
        line = self._lines.setdefault(key, _Line())
        never = outlet is None or not msg.message_id or bool(msg.unprompted) or msg.author_is_bot
        line.waiting.append(_Waiting(msg, arrived, outlet, tried=never))
        if line.timer is None and not line.noticed:
            self._schedule(key, line)

    def over(self, key: str, msgs: Iterable[Incoming]) -> None:
        """These messages wait no more; a conversation with none left ends its wait."""
        line = self._lines.get(key)
        if line is None:
            return
        done = {id(m) for m in msgs}
        line.waiting = [w for w in line.waiting if id(w.msg) not in done]
        if not line.waiting:
            if line.timer is not None:
                line.timer.cancel()
            del self._lines[key]

    def _schedule(self, key: str, line: _Line) -> None:
        nxt = next((w for w in line.waiting if not w.tried), None)
        line.timer = None
        if nxt is None or line.noticed:
            return
        delay = max(0.0, nxt.arrived + self.seconds - self.clock())
        line.timer = asyncio.get_running_loop().call_later(delay, self._due, key, line)

    def _due(self, key: str, line: _Line) -> None:
        line.timer = None
        if self._lines.get(key) is not line or line.noticed:
            return
        now = self.clock()
        entry = next((w for w in line.waiting if not w.tried), None)
        if entry is None:
            return
        if entry.arrived + self.seconds > now:
            self._schedule(key, line)
            return
        entry.tried = True
        task = asyncio.get_running_loop().create_task(self._notify(key, line, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, key: str, line: _Line, entry: _Waiting) -> None:
        posted = False
        try:
            reply = await self.compose(entry.msg)
            if reply is not None and entry.outlet is not None and not line.noticed and entry in line.waiting:
                line.noticed = True
                posted = True
                metrics.busy_notice()
                log.info("%s: message %s has waited %.0f s; told it the character is busy",
                         key, entry.msg.message_id, self.clock() - entry.arrived)
                await entry.outlet.send(reply)
        except Exception as exc:  # a notice is a courtesy: the answer still comes
            log.warning("%s: busy notice not posted (%s: %s)", key, type(exc).__name__, exc)
        if not posted and self._lines.get(key) is line:
            self._schedule(key, line)
