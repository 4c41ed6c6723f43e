"""The knowledge store: the character's source work (Chroma + BM25), lorebook and scenes."""

from __future__ import annotations

from bot.config import Settings
from bot.lookup import Knowledge, NoKnowledge


async def open_knowledge(settings: Settings) -> Knowledge:
    """The knowledge lookup for the bot (built once by the composition root)."""
    return NoKnowledge()


async def knowledge_check(settings: Settings) -> tuple[bool, str, str]:
    """For `doctor`: (ok, detail, fix)."""
    if not settings.knowledge.enabled:
        return True, "disabled", ""
    return True, "no source index in this build; lore comes from the cards", ""
