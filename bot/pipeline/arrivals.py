"""Each conversation's messages take their places in the order they arrived, whatever each awaited first.

Discord: turning a message into an Incoming awaits the store (the channel's persona) and sometimes
the REST API (a quoted message that is not cached). The chain: a message's intake (its
conversation's persona, the member's rate limit) awaits the store. A later message that needed less
could otherwise take its place first and be answered first. Each message waits only until the one
before it in its conversation has taken its place (or has ended), never for that message's reply,
so bursts still merge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class Ticket:
    """One message's place in its channel's line."""

    def __init__(self, line: Arrivals, channel: Hashable, before: asyncio.Future[None] | None):
        self._line, self._channel, self._before = line, channel, before
        self._mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def turn(self) -> None:
        """Wait until the message before this one has taken its place (or ended)."""
        if self._before is not None:
            await asyncio.shield(self._before)

    def placed(self) -> None:
        """This message has its place in the chain (or needs none): the next one may go."""
        if not self._mine.done():
            self._mine.set_result(None)
        if self._line._last.get(self._channel) is self._mine:
            del self._line._last[self._channel]


class Arrivals:
    """The line of messages per channel (or conversation); `arrive` must be called before the handler first awaits."""

    def __init__(self) -> None:
        self._last: dict[Hashable, asyncio.Future[None]] = {}

    def arrive(self, channel: Hashable) -> Ticket:
        """A ticket behind the channel's previous message."""
        ticket = Ticket(self, channel, self._last.get(channel))
        self._last[channel] = ticket._mine
        return ticket

    def __len__(self) -> int:
        return len(self._last)
