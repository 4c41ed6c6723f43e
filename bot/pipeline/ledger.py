"""What this run holds: each message it may answer journaled as it arrives, marked done once answered.

The journal (memory/journal.py) is the source of truth across processes and restarts; the ledger
adds what only this process knows: which messages it is handling right now, so a redelivery that
arrives meanwhile is not answered a second time. A message the character will not answer (group
chatter nobody addressed to it) is held here too, but never journaled: it has nothing to survive a
stop for.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

from core.messages import Incoming
from memory.journal import Entered, Entry, Journal, Route, mark_of

log = logging.getLogger(__name__)
SEEN_TTL = 24 * 3600.0  # how long a done mark stops a redelivery; one arriving later is answered again


class Ledger:
    """The messages this run holds, by journal key, each with its journal entry's fate."""

    def __init__(self, journal: Journal, wall: Callable[[], float], run: str = ""):
        self.journal = journal
        self.wall = wall
        self.run = run or uuid.uuid4().hex
        self._holding: dict[str, asyncio.Future[Entered]] = {}
        self._unjournaled: set[str] = set()

    def __len__(self) -> int:
        return len(self._holding)

    def holds(self, msg: Incoming) -> bool:
        """Whether this run handles the message right now."""
        return mark_of(msg) in self._holding

    def arrive(self, msg: Incoming, route: Route | None, journal: bool = True) -> bool:
        """Start journaling a message (nothing awaited here); False for a redelivery of one held now.

        With `journal` false it is only held (one that will not be answered)."""
        key = mark_of(msg)
        if key in self._holding:
            return False
        if journal:
            entry = Entry(msg, route or Route(), self.wall())
            self._holding[key] = asyncio.ensure_future(self.journal.enter(entry, self.run))
        else:
            held: asyncio.Future[Entered] = asyncio.get_running_loop().create_future()
            held.set_result("new")
            self._holding[key] = held
            self._unjournaled.add(key)
        return True

    async def answers(self, msg: Incoming) -> bool:
        """Whether this run answers the message: it was journaled now or is held by this run.

        Answered already, or held by another live run: no, and the ledger lets go of it. A journal
        that cannot be written does not keep a message from being answered.
        """
        if not msg.message_id:
            return True
        key = mark_of(msg)
        entering = self._holding.get(key)
        if entering is None:
            return False  # let go already: it was found a duplicate while waiting
        try:
            fate = await asyncio.shield(entering)
        except Exception as exc:  # an answer matters more than its journal entry
            log.warning("journal: %s not journaled (%s: %s); answered without it", key, type(exc).__name__, exc)
            return True
        if fate in ("new", "mine"):
            return True
        self._holding.pop(key, None)
        return False

    async def shelve(self, msg: Incoming) -> None:
        """Only journal the message (while stopping): the next run answers it."""
        entering = self._holding.pop(mark_of(msg), None)
        if entering is not None:
            await asyncio.gather(entering, return_exceptions=True)

    async def done(self, run: Sequence[Incoming]) -> None:
        """The messages were answered (or failed for good): done in the journal, let go here."""
        keys = []
        for key in (mark_of(m) for m in run if m.message_id):
            self._holding.pop(key, None)
            if key in self._unjournaled:
                self._unjournaled.discard(key)
            else:
                keys.append(key)
        if not keys:
            return
        try:
            # shielded: a stop arriving now must not leave an answered message to be answered again
            await asyncio.shield(self.journal.done(keys, SEEN_TTL))
        except Exception as exc:  # the answer went out; only its mark is missing
            log.warning("journal: %d answered message(s) not marked done (%s: %s)", len(keys), type(exc).__name__, exc)

    def let_go(self, run: Sequence[Incoming]) -> None:
        """Stopped before the answer: let go here; the journal keeps them for the next run."""
        for m in run:
            if m.message_id:
                self._holding.pop(mark_of(m), None)
                self._unjournaled.discard(mark_of(m))
