"""Stand-ins at the edge of the pipeline: an outlet (core/outlet.py) that keeps what the pipeline hands
it, in order, as a front would see it; a voice whose clip names the card's speaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from core.messages import Clip, Reply
from core.outlet import ClipTask
from persona.card import Persona


class Recorder:
    """Records ("placed", position), ("partial", text), ("send", reply), ("react", emoji), ("voice", clip).

    `send` and `partial`, when given, are called after each reply part or piece is recorded (a front's
    platform calls: they may be slow or raise)."""

    def __init__(self, send: Callable[[Reply], Awaitable[Any]] | None = None,
                 partial: Callable[[str], Awaitable[Any]] | None = None):
        self.events: list[tuple[str, Any]] = []
        self._send = send
        self._partial = partial

    def placed(self, position: int) -> None:
        self.events.append(("placed", position))

    async def partial(self, text: str) -> None:
        self.events.append(("partial", text))
        if self._partial is not None:
            await self._partial(text)

    async def send(self, reply: Reply) -> None:
        self.events.append(("send", reply))
        if self._send is not None:
            await self._send(reply)

    async def react(self, emoji: str) -> None:
        self.events.append(("react", emoji))

    async def voice(self, clip: ClipTask) -> None:
        self.events.append(("voice", await clip))

    @property
    def kinds(self) -> list[str]:
        """The calls in order, consecutive partials as one "partial*"."""
        out: list[str] = []
        for kind, _ in self.events:
            name = "partial*" if kind == "partial" else kind
            if not (out and out[-1] == name == "partial*"):
                out.append(name)
        return out

    @property
    def partials(self) -> list[str]:
        """The streamed pieces, in order."""
        return [text for kind, text in self.events if kind == "partial"]

    @property
    def sent(self) -> list[Reply]:
        """The reply parts posted, in order."""
        return [reply for kind, reply in self.events if kind == "send"]


class Chime:
    """A Voice standing in for the TTS engine: a little clip naming the card's speaker."""

    async def speak(self, persona: Persona, text: str, *, fmt: str = "wav") -> Clip | None:
        await asyncio.sleep(0.05)
        return Clip(f"RIFF-{persona.card.voice.speaker}".encode(), fmt, 0.5, text)

    async def close(self) -> None:
        return None
