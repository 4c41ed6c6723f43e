"""One scene transcript, several views: each line kept with its speaker in every character's memory.

A scene's characters share one channel. Each keeps its own session there (its window, summary,
archive and facts, keyed by channel and persona), and every line of the scene goes into each
session as that character sees it: its own lines as its replies ("assistant"), what people and the
other characters say as named speakers ("user" turns with a name; a character's line also carries
`speaker`, its persona id). So each character reads the whole scene in order, its memory stays its
own, and nothing of another character's card ever enters its prompt: only what the other said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from core.conversation import Conversation
from memory.store import ConversationStore
from memory.turns import SessionKey, Turn

CHARACTER = "scene:"  # the user id a character's line is kept under (never a platform's user id)


def character_user(persona: str) -> str:
    """The user id under which a character's lines are kept in the others' memories."""
    return f"{CHARACTER}{persona}"


def line_of(persona: str, name: str, text: str, at: float, addressed: bool = False) -> Turn:
    """A character's line as another character of the scene keeps it: a named speaker, never its own reply."""
    return Turn("user", text, character_user(persona), name, addressed, at, speaker=persona)


async def record(store: ConversationStore, where: Conversation, personas: Iterable[str], turn: Turn) -> None:
    """Keep one line of the scene in the memory of each of these characters, at the same time."""
    await asyncio.gather(*(store.append(SessionKey.of(pid, where), [turn]) for pid in dict.fromkeys(personas)))


def said_by(turn: Turn, persona: str) -> str:
    """Who said a turn, as the character `persona` sees it: "self", "character" or "person"."""
    if turn.role == "assistant" or turn.speaker == persona:
        return "self"
    return "character" if turn.speaker else "person"
