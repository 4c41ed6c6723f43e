"""What a running bot has kept, read through a store of its own (the bot's process keeps its store open)."""

from __future__ import annotations

from core.config import Settings
from memory.open import open_store
from memory.turns import SessionKey, Turn


async def kept_turns(settings: Settings, group: int, persona: str = "horo", limit: int = 50) -> list[Turn]:
    """The last `limit` turns a QQ group's conversation with `persona` holds."""
    store = await open_store(settings.memory)
    try:
        return await store.recent(SessionKey(persona, "qq", "group", str(group)), limit)
    finally:
        await store.close()
