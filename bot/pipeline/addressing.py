"""Is the character spoken to, and what becomes of a message it does not answer."""

from __future__ import annotations

from bot.pipeline.exchange import Exchange
from core.messages import Incoming
from core.stores import TurnLog
from memory.turns import SessionKey, Turn
from persona.card import Persona
from persona.library import name_position


def names_in(text: str, names: list[str]) -> bool:
    """True when a name occurs: as a whole word for Latin names, anywhere for CJK ones."""
    return any(name_position(text, name) >= 0 for name in names)


def addressed(msg: Incoming, text: str, persona: Persona) -> bool:
    """Is the character spoken to: a direct chat, an @, a reply to it, or its name in the text."""
    return msg.is_direct or msg.mentions_bot or msg.reply_to_bot or names_in(text, persona.triggers())


async def keep_as_context(store: TurnLog, ex: Exchange, text: str, at: float) -> None:
    """Store a message the character does not answer as an unaddressed turn (nothing when empty)."""
    await keep_message(store, ex.session, ex.incoming, text, at)


async def keep_message(store: TurnLog, session: SessionKey, msg: Incoming, text: str, at: float) -> None:
    """`keep_as_context` for a message that has no exchange (set aside before its turn)."""
    if not text:
        return
    turn = Turn("user", text, msg.user_id, msg.display_name, addressed=False, at=at, message_id=msg.message_id)
    await store.append(session, [turn])
