"""Stage 7, speak: start the voice clip in the background; the text never waits for it."""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.pipeline.exchange import Exchange
from core.background import Background
from core.messages import Clip, Platform
from persona.card import Persona
from voice.base import Voice

log = logging.getLogger(__name__)

# Discord voice messages are Ogg/Opus; OneBot implementations turn WAV into QQ's silk.
CLIP_FORMATS: dict[Platform, str] = {"discord": "ogg", "qq": "wav", "terminal": "wav", "test": "wav"}


def clip_format(platform: Platform) -> str:
    """The clip format a platform can post."""
    return CLIP_FORMATS.get(platform, "wav")


class Speak:
    """Attaches a voice task to the reply when voice is on for the channel."""

    def __init__(self, voice: Voice | None, enabled: bool, background: Background):
        self.voice = voice
        self.enabled = enabled
        self.background = background

    async def __call__(self, ex: Exchange) -> Exchange:
        """Reply.voice becomes a task that yields the clip (or None on failure)."""
        wanted = ex.settings.voice if ex.settings.voice is not None else self.enabled
        if not (wanted and self.voice and ex.reply and ex.reply.text.strip()):
            return ex
        fmt = clip_format(ex.incoming.platform)
        task = self.background.spawn(self._clip(ex.persona, ex.reply.text, fmt), name="voice")
        return replace(ex, reply=replace(ex.reply, voice=task))

    async def _clip(self, persona: Persona, text: str, fmt: str) -> Clip | None:
        assert self.voice is not None
        try:
            return await self.voice.speak(persona, text, fmt=fmt)
        except Exception as exc:  # voice must never break the text reply
            log.warning("voice failed for %s: %s", persona.id, exc)
            return None
