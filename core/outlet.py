"""The one way out of the pipeline: what a front hands the chain with each message.

A front turns its platform's event into an `Incoming` and calls `Chain.handle(incoming, outlet)`;
everything that goes back out comes through the outlet, in this order:

    placed(position)    once, before anything is awaited: the message has its place in its conversation
    partial(text)*      the reply as it is written (streamed edits, a typing indicator, a terminal)
    send(reply)         each reply part: a busy notice or rate-limit line, then the answer
    react(emoji)        instead of `send`, when the character answers a short acknowledgement with a feeling
    voice(clip)         after the answer, outside the conversation's turn: the clip still being made

A busy notice (`send` of a canned line quoting this message) may come before or between the
partials. A message the character stays silent on gets only `placed`. Every `Reply` knows the
message it answers (`reply_to`); a front quotes that message where its platform can.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.conversation import Conversation
from core.messages import Clip, Reply

ClipTask = asyncio.Task[Clip | None]  # a voice clip being made; None when synthesis failed


class Outlet(Protocol):
    """Where one message's answer goes: a front implements this once."""

    def placed(self, position: int) -> None:
        """The message has its place: `position` messages of its conversation go before it (0: none)."""

    async def partial(self, text: str) -> None:
        """The next piece of the reply as it is written (it may still be replaced by `send`)."""

    async def send(self, reply: Reply) -> None:
        """One reply part, whole: post it (split and paced as the platform needs), quoting `reply.reply_to`."""

    async def react(self, emoji: str) -> None:
        """Answer the message with this emoji as a reaction (or the platform's nearest thing)."""

    async def voice(self, clip: ClipTask) -> None:
        """The answer's voice clip, still being made: await it (or bound the wait, or cancel it) and post it."""


# An outlet into a conversation that nobody just wrote in (the character speaking first), through the
# bot account with this id; None when that conversation cannot be reached now.
Poster = Callable[[Conversation, str], Awaitable[Outlet | None]]
