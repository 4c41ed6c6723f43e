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
import logging
from collections.abc import Mapping

from core.conversation import Conversation
from core.sanitize import clean_name, clean_text
from core.stores import TurnLog
from memory.turns import SessionKey, Turn

log = logging.getLogger(__name__)
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
    """Writes a channel's scene lines into the characters' memories in order, while the characters go on talking.

    Each write follows the one before it, across rounds; `ready(pid)` waits until every line meant for
    that character is written (so, before it speaks, its memory is in order), `close()` until all are.
    A round's last line is written after the round: the channel's next round finds it in order. A write
    that fails is logged and the ones after it go on (the character speaks without that line).
    """

    def __init__(self, store: TurnLog, where: Conversation):
        self.store = store
        self.where = where
        self.rounds = 0  # rounds of the channel running with this keeper (0 or 1: a scene's lock holds them)
        self._last: asyncio.Future[None] | None = None
        self._owed: dict[str, asyncio.Future[None]] = {}  # character -> the last write holding a line for it

    @property
    def idle(self) -> bool:
        """Every line kept is written."""
        return self._last is None or self._last.done()

    def keep(self, turns: Mapping[str, Turn]) -> None:
        """Start writing these lines (persona id -> its copy), after the ones before them."""
        if turns:
            self._last = asyncio.ensure_future(self._write(self._last, dict(turns)))
            self._last.add_done_callback(self._failed)
            self._owed.update(dict.fromkeys(turns, self._last))

    async def _write(self, before: asyncio.Future[None] | None, turns: Mapping[str, Turn]) -> None:
        if before is not None and not before.done():
            await asyncio.wait((before,))  # after it, whether it was written or failed
        await record(self.store, self.where, turns)

    def _failed(self, write: asyncio.Future[None]) -> None:
        if not write.cancelled() and (exc := write.exception()) is not None:
            log.warning("a scene line of %s was not kept in the characters' memories: %s", self.where, exc)

    async def ready(self, persona: str) -> None:
        """Every line meant for `persona` is in its memory (the writes after it are not waited for)."""
        write = self._owed.get(persona)
        if write is not None and not write.done():
            await asyncio.wait((write,))  # the writes go in order: the ones before it are done too
        if self._owed.get(persona) is write:
            self._owed.pop(persona, None)

    async def close(self) -> None:
        """Every line is written (or failed), those kept meanwhile too."""
        last = None
        while self._last is not last:
            last = self._last
            if last is not None and not last.done():
                await asyncio.wait((last,))
        self._owed.clear()


def said_by(turn: Turn, persona: str) -> str:
    """Who said a turn, as the character `persona` sees it: "self", "character" or "person"."""
    if turn.role == "assistant" or turn.speaker == persona:
        return "self"
    return "character" if turn.speaker else "person"
