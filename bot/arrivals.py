"""Each Discord channel's messages reach the chain in the order Discord delivered them.

Turning a message into an Incoming awaits the store (the channel's persona) and sometimes the REST
API (a quoted message that is not cached); a later message that needs neither could reach the chain
first and be answered first. Each message waits only until the one before it in its channel has
taken its place in the chain (or has ended), never for that message's reply, so bursts still merge.
"""

from __future__ import annotations

import asyncio


class Ticket:
    """One message's place in its channel's line."""

    def __init__(self, line: Arrivals, channel: int, before: asyncio.Future[None] | None):
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
    """The line of messages per channel; `arrive` must be called before the handler first awaits."""

    def __init__(self) -> None:
        self._last: dict[int, asyncio.Future[None]] = {}

    def arrive(self, channel: int) -> Ticket:
        """A ticket behind the channel's previous message."""
        ticket = Ticket(self, channel, self._last.get(channel))
        self._last[channel] = ticket._mine
        return ticket

    def __len__(self) -> int:
        return len(self._last)
