"""Fact books, reply contexts, channel settings and counters in the SQLite file: `fact_books`,
`contexts`, `settings` and `rate_hits`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from core.conversation import Conversation
from core.stores import FactChange
from core.turns import CONTEXTS_KEPT, FactBook, LastContext, SessionKey
from memory.sqlite_file import SQLiteFile


class SQLiteFacts:
    """FactStore: one JSON book per persona and member, changed inside a transaction."""

    def __init__(self, file: SQLiteFile):
        self._run = file.run

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """The texts of every fact the persona knows about a user (all conversations), oldest first."""
        return [f.text for f in (await self.fact_book(persona, platform, user_id)).facts]

    async def fact_book(self, persona: str, platform: str, user_id: str) -> FactBook:
        """Every fact about a user, with where and when each was learned."""
        owner = f"{persona}:{platform}:{user_id}"
        return await self._run(lambda db: _book(db, owner))

    async def change_facts(self, persona: str, platform: str, user_id: str, change: FactChange) -> FactBook:
        """Replace a user's facts with `change(current)`, atomically."""
        owner = f"{persona}:{platform}:{user_id}"

        def tx(db: sqlite3.Connection) -> FactBook:
            book = change(_book(db, owner))
            db.execute("INSERT OR REPLACE INTO fact_books VALUES (?,?)", (owner, book.dumps()))
            return book

        return await self._run(tx)

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user."""
        owner = f"{persona}:{platform}:{user_id}"
        await self._run(lambda db: db.execute("DELETE FROM fact_books WHERE owner=?", (owner,)))


class SQLiteReplies:
    """ReplyContexts: rows per conversation, the newest CONTEXTS_KEPT kept."""

    def __init__(self, file: SQLiteFile):
        self._run = file.run

    async def last_context(self, key: SessionKey) -> LastContext | None:
        """What the conversation's last reply was given (None before the first)."""

        found = await self.contexts(key, 1)
        return found[0] if found else None

    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """What the conversation's last `limit` replies were given, newest first."""
        rows: list[Any] = await self._run(lambda db: db.execute(
            "SELECT body FROM contexts WHERE session=? ORDER BY n DESC LIMIT ?", (str(key), max(0, limit))).fetchall())
        return [LastContext.loads(r[0]) for r in rows]

    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """Record what the reply just made was given (the last CONTEXTS_KEPT are kept)."""
        session, body = str(key), context.dumps()

        def tx(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO contexts (session, body) VALUES (?,?)", (session, body))
            db.execute("DELETE FROM contexts WHERE session=? AND n NOT IN "
                       "(SELECT n FROM contexts WHERE session=? ORDER BY n DESC LIMIT ?)", (session, session, CONTEXTS_KEPT))

        await self._run(tx)


class SQLiteSettings:
    """SettingsStore: a row per channel and setting."""

    def __init__(self, file: SQLiteFile):
        self._run = file.run

    async def settings(self, conversation: Conversation) -> dict[str, str]:
        """Per-channel settings (persona, voice, max_chapter...)."""
        rows: list[Any] = await self._run(
            lambda db: db.execute(
                "SELECT name, value FROM settings WHERE channel=?", (conversation.key,)
            ).fetchall()
        )
        return {name: value for name, value in rows}

    async def set_setting(self, conversation: Conversation, name: str, value: str | None) -> None:
        """Set (or with None, remove) one per-channel setting."""
        channel_key = conversation.key
        args: tuple[str, ...]
        if value is None:
            sql, args = "DELETE FROM settings WHERE channel=? AND name=?", (channel_key, name)
        else:
            sql, args = "INSERT OR REPLACE INTO settings VALUES (?,?,?)", (channel_key, name, value)
        await self._run(lambda db: db.execute(sql, args))


class SQLiteCounters:
    """Counters: a row per hit, kept no longer than its window."""

    def __init__(self, file: SQLiteFile, clock: Callable[[], float] = time.time):
        self._run = file.run
        self._clock = clock

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """Count one hit on `key` unless `limit` hits already fell in the last `window_s` seconds."""
        now = self._clock()

        def tx(db: sqlite3.Connection) -> bool:
            # hits live no longer than their window, so the table stays small without a schema bump
            db.execute("CREATE TABLE IF NOT EXISTS rate_hits (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS rate_hits_key ON rate_hits (key, at)")
            db.execute("DELETE FROM rate_hits WHERE expires<=?", (now,))
            (n,) = db.execute("SELECT COUNT(*) FROM rate_hits WHERE key=? AND at>?", (key, now - window_s)).fetchone()
            if n >= limit:
                return False
            db.execute("INSERT INTO rate_hits VALUES (?,?,?)", (key, now, now + window_s))
            return True

        return await self._run(tx)


def _book(db: sqlite3.Connection, owner: str) -> FactBook:
    row = db.execute("SELECT body FROM fact_books WHERE owner=?", (owner,)).fetchone()
    return FactBook.loads(row[0] if row else None)
