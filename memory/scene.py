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
from collections.abc import Mapping

from core.conversation import Conversation
from core.sanitize import clean_name, clean_text
from core.stores import TurnLog
from memory.turns import SessionKey, Turn

CHARACTER = "scene:"  # the user id a character's line is kept under (never a platform's user id)


def character_user(persona: str) -> str:
    """The user id under which a character's lines are kept in the others' memories."""
    return f"{CHARACTER}{persona}"


def line_of(persona: str, name: str, text: str, at: float, addressed: bool = False) -> Turn:
    """A character's line as another character of the scene keeps it: a named speaker, never its own reply.

    The line is the model's output: it is cleaned like a member's message (template tokens, controls)
    before it enters another character's memory and prompt."""
    return Turn("user", clean_text(text), character_user(persona), clean_name(name), addressed, at, speaker=persona)


async def record(store: TurnLog, where: Conversation, turns: Mapping[str, Turn]) -> None:
    """Keep one line of the scene in the memory of each of these characters (persona id -> the line as
    it keeps it), in one round trip."""
    await store.append_each([(SessionKey.of(pid, where), [turn]) for pid, turn in turns.items()])


class Keeper:
    """Writes a round's lines into the characters' memories in order, while the characters go on talking.

    Each write follows the one before it; `ready(pid)` waits until every line meant for that character
    is written (so, before it speaks, its memory is in order), `close()` until all are.
    """

    def __init__(self, store: TurnLog, where: Conversation):
        self.store = store
        self.where = where
        self._last: asyncio.Future[None] | None = None
        self._owed: set[str] = set()  # characters with a line on its way

    def keep(self, turns: Mapping[str, Turn]) -> None:
        """Start writing these lines (persona id -> its copy), after the ones before them."""
        if turns:
            self._last = asyncio.ensure_future(self._write(self._last, dict(turns)))
            self._owed |= set(turns)

    async def _write(self, before: asyncio.Future[None] | None, turns: Mapping[str, Turn]) -> None:
        if before is not None:
            await before
        await record(self.store, self.where, turns)

    async def ready(self, persona: str) -> None:
        """Every line meant for `persona` is in its memory."""
        if persona in self._owed and self._last is not None:
            await self._last
            self._owed.clear()

    async def close(self) -> None:
        """Every line is written (a write that failed raises here)."""
        if self._last is not None:
            await self._last
            self._owed.clear()


def said_by(turn: Turn, persona: str) -> str:
    """Who said a turn, as the character `persona` sees it: "self", "character" or "person"."""
    if turn.role == "assistant" or turn.speaker == persona:
        return "self"
    return "character" if turn.speaker else "person"
