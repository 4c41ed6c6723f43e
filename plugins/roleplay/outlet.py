"""QQ's outlet: every reply, notice and unprompted line on QQ goes out here, whichever adapter carries it.

The adapter-specific half is a `Wire` (OneBot v11 answering a message or posting into a group, the
official API answering a message); how a reply is delayed, cut, paced, forwarded and followed by
its clip is decided once, here.
"""

from __future__ import annotations

from typing import Protocol

from bot.app import Clocks
from bot.outbound.pacing import Pacing
from core.config import QQConfig
from core.messages import Clip, Reply
from core.outlet import ClipTask
from plugins.roleplay.delivery import clip_of, pause, plan, waited


class Wire(Protocol):
    """What one adapter can put on the wire for one message (or one group): text, a forward, a clip, a face."""

    quotes: bool  # the first message quotes the one answered (a merged-forward cannot: its first part goes ahead)
    forwards: bool  # a long reply may go as one merged-forward message
    voices: bool  # voice clips can be posted (else a clip is not even waited for)
    sent_at: object  # when the answered message was sent, as the platform stamps it (None: nothing answered)

    async def text(self, chunk: str, quote: bool) -> None:
        """One plain message (quoting the answered one when `quote`, where it can)."""

    async def forward(self, name: str, chunks: tuple[str, ...]) -> bool:
        """One merged-forward message of these chunks under `name`; False when it could not be sent."""

    async def clip(self, clip: Clip) -> None:
        """The voice clip as a message of its own."""

    async def face(self, emoji: str) -> None:
        """A feeling instead of words, answering the message."""


class QQOutlet:
    """Answers one QQ message (or speaks first into a group) through its adapter's wire.

    With `pacing`, a reply waits like a person (the optional random delay, then paced parts); a line
    the character starts unprompted goes out at once, cut only to QQ's limits."""

    def __init__(self, wire: Wire, cfg: QQConfig, pacing: Pacing | None = None, clocks: Clocks | None = None):
        self.wire = wire
        self.cfg = cfg
        self.pacing = pacing
        self.clocks = clocks or Clocks()
        self.delivered = False  # something reached the platform (a failure after it loses no message)

    def placed(self, position: int) -> None:
        """QQ shows no queue."""

    async def partial(self, text: str) -> None:
        """QQ messages cannot be edited: the reply goes out whole."""

    async def send(self, reply: Reply) -> None:
        """The reply's text: delay, then paced messages or a merged-forward; the first message quotes."""
        if reply.text:
            await self._text(reply)
        self.delivered = True

    async def react(self, emoji: str) -> None:
        """The adapter's nearest thing to a reaction."""
        await self.wire.face(emoji)
        self.delivered = True

    async def voice(self, clip: ClipTask) -> None:
        """The clip after the text, when it is ready within [qq] voice_wait_seconds."""
        if not self.wire.voices:
            clip.cancel()
            return
        made = await clip_of(clip, self.cfg)
        if made is not None:
            await self.wire.clip(made)

    async def _text(self, reply: Reply) -> None:
        pacing = self.pacing
        if pacing is not None:
            await pause(self.cfg, self.clocks.chance, self.clocks.sleep)
        cut = plan(reply.text, self.cfg, pacing, forward=self.wire.forwards)
        chunks, quoted = cut.chunks, False
        # the first part's delay counts the time since the message was sent (OneBot's `time` is whole seconds)
        spent = waited(self.wire.sent_at, self.clocks.wall)
        if cut.kind == "forward":
            if pacing is not None:
                await pacing.wait(reply.text, spent)
            spent = float("inf")  # already waited: what follows goes at once, then paced
            if self.wire.quotes:  # a merged-forward cannot quote: the first part goes ahead, quoting
                await self.wire.text(chunks[0], quote=True)
                chunks, quoted = chunks[1:], True
            if len(chunks) > 1 and await self.wire.forward(reply.persona_name, chunks):
                return

        async def one(i: int, chunk: str) -> None:
            await self.wire.text(chunk, quote=i == 0 and not quoted)

        if pacing is None:
            for i, chunk in enumerate(chunks):
                await one(i, chunk)
        else:
            await pacing.send(chunks, one, spent=spent)
