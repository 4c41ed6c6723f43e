"""The journal in the SQLite file: `journal` (messages held, by run) and `journal_runs` (runs alive until).

Done marks are rows of `seen`, the table that held them before the journal existed, so a message
seen before an upgrade stays seen.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from memory.journal import Adopted, Entered, Entry

log = logging.getLogger(__name__)
Transaction = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]

DDL = [
    "CREATE TABLE journal (key TEXT PRIMARY KEY, owner TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX journal_at ON journal (at)",
    "CREATE TABLE journal_runs (run TEXT PRIMARY KEY, expires REAL NOT NULL)",
]


def _alive(db: sqlite3.Connection, run: str, now: float) -> bool:
    return db.execute("SELECT 1 FROM journal_runs WHERE run=? AND expires>=?", (run, now)).fetchone() is not None


class SQLiteJournal:
    """The Journal contract over the store's transactions (`run`) and its wall clock."""

    def __init__(self, transaction: Transaction, clock: Callable[[], float]):
        self._tx = transaction
        self._clock = clock

    async def enter(self, entry: Entry, run: str) -> Entered:
        """Journal a received message for `run` unless it is known."""
        key, body, now = entry.key, entry.dumps(), self._clock()

        def tx(db: sqlite3.Connection) -> Entered:
            db.execute("DELETE FROM seen WHERE expires<?", (now,))
            if db.execute("SELECT 1 FROM seen WHERE key=?", (key,)).fetchone():
                return "done"
            row = db.execute("SELECT owner FROM journal WHERE key=?", (key,)).fetchone()
            if row is None:
                db.execute("INSERT INTO journal VALUES (?,?,?,?)", (key, run, entry.at, body))
                return "new"
            owner = row[0]
            if owner == run:
                return "mine"
            if owner and _alive(db, owner, now):
                return "busy"
            db.execute("UPDATE journal SET owner=? WHERE key=?", (run, key))
            return "mine"

        result: Entered = await self._tx(tx)
        return result

    async def done(self, keys: Sequence[str], keep: float) -> None:
        """Mark messages answered: out of the journal, and seen for `keep` seconds."""
        until = self._clock() + keep

        def tx(db: sqlite3.Connection) -> None:
            for key in keys:
                db.execute("INSERT OR REPLACE INTO seen VALUES (?,?)", (key, until))
                db.execute("DELETE FROM journal WHERE key=?", (key,))

        if keys:
            await self._tx(tx)

    async def release(self, key: str, run: str) -> None:
        """Let go of a message `run` holds; the next sweep adopts it."""
        await self._tx(lambda db: db.execute("UPDATE journal SET owner='' WHERE key=? AND owner=?", (key, run)))

    async def alive(self, run: str, seconds: float) -> None:
        """Say that `run` is alive for the next `seconds`."""
        now = self._clock()

        def tx(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM journal_runs WHERE expires<?", (now,))
            db.execute("INSERT OR REPLACE INTO journal_runs VALUES (?,?)", (run, now + seconds))

        await self._tx(tx)

    async def gone(self, run: str) -> None:
        """Say that `run` has stopped."""
        await self._tx(lambda db: db.execute("DELETE FROM journal_runs WHERE run=?", (run,)))

    async def adopt(self, run: str, stale_before: float, limit: int, keep: float) -> Adopted:
        """Take over up to `limit` messages held by no live run, oldest first; older ones are marked done."""
        now = self._clock()

        def tx(db: sqlite3.Connection) -> tuple[list[str], int]:
            rows = db.execute(
                "SELECT j.key, j.at, j.body FROM journal j LEFT JOIN journal_runs r"
                " ON r.run=j.owner AND r.expires>=? WHERE j.owner<>? AND r.run IS NULL ORDER BY j.at LIMIT ?",
                (now, run, limit),
            ).fetchall()
            taken, stale = [], 0
            for key, at, body in rows:
                if at < stale_before:
                    db.execute("DELETE FROM journal WHERE key=?", (key,))
                    db.execute("INSERT OR REPLACE INTO seen VALUES (?,?)", (key, now + keep))
                    stale += 1
                else:
                    db.execute("UPDATE journal SET owner=? WHERE key=?", (run, key))
                    taken.append(body)
            return taken, stale

        bodies, stale = await self._tx(tx)
        entries = []
        for body in bodies:
            try:
                entries.append(Entry.loads(body))
            except ValueError as exc:  # written by something else: nothing to answer
                log.warning("journal: an entry cannot be read (%s); dropped", exc)
        return Adopted(tuple(entries), stale)
