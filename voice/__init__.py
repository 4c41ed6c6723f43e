"""Voice: translate a reply into the voice's language and synthesize a clip."""

from __future__ import annotations

from bot.config import Settings
from bot.llm import ChatModel
from voice.base import Voice


async def open_voice(settings: Settings, model: ChatModel | None) -> Voice | None:
    """The voice service for the bot, or None when no engine is available."""
    return None


async def voice_check(settings: Settings) -> tuple[bool, str, str]:
    """For `doctor`: (ok, detail, fix)."""
    if not settings.voice.enabled:
        return True, "off ([voice] enabled = false)", ""
    return False, "voice is on but no engine is part of this build", "set [voice] enabled = false"
