"""Conversation store in one SQLite file: the embedded default when no Redis answers.

Schema 4 (PRAGMA user_version): the window (`turns`) and the archive of older turns (`archive`),
a floor per session (turns up to it were forgotten), one JSON fact book per user (`fact_books`),
what the last replies were given (`contexts`) and the journal of messages not yet answered
(memory/sqlite_journal.py). An older file is migrated in one transaction on open.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from core.conversation import Conversation
from core.files import private_file
from memory.sqlite_journal import DDL as JOURNAL_DDL
from memory.sqlite_journal import SQLiteJournal
from memory.store import FactChange, StoreError
from memory.turns import (
    CONTEXTS_KEPT,
    Fact,
    FactBook,
    LastContext,
    SessionInfo,
    SessionKey,
    SessionPage,
    Summary,
    Turn,
    TurnSpan,
    parse_session,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
SCHEMA_VERSION = 4

# schema 1, as it was: a file of that version has these tables
_DDL_V1 = """
CREATE TABLE IF NOT EXISTS sessions (
  session TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0,
  summary TEXT NOT NULL DEFAULT '', summary_upto INTEGER NOT NULL DEFAULT 0,
  active REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS turns (
  session TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS facts (
  owner TEXT NOT NULL, fact TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (owner, fact));
CREATE TABLE IF NOT EXISTS settings (
  channel TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (channel, name));
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_active ON sessions (active);
"""

# from schema 1 to 2; run inside the migrating transaction
_V1_TO_V2 = [
    "ALTER TABLE sessions ADD COLUMN floor INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE archive (session TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    " at REAL NOT NULL DEFAULT 0, PRIMARY KEY (session, seq))",
    "CREATE INDEX archive_at ON archive (session, at)",
    "CREATE TABLE fact_books (owner TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE last_context (session TEXT PRIMARY KEY, body TEXT NOT NULL)",
]


# from schema 3 to 4: the last reply's context becomes the last few replies' contexts
_V3_TO_V4 = [
    "CREATE TABLE contexts (n INTEGER PRIMARY KEY, session TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX contexts_session ON contexts (session, n)",
    "INSERT INTO contexts (session, body) SELECT session, body FROM last_context",
    "DROP TABLE last_context",
]


class SQLiteStore:
    """Embedded store: one file, WAL journal, calls run in a worker thread."""

    name = "sqlite"

    def __init__(
        self,
        path: Path,
        max_turns: int = 200,
        ttl: float = 0.0,
        clock: Callable[[], float] = time.time,
        *,
        archive_turns: int = 10_000,
        archive_days: float = 0.0,
    ):
        try:
            private_file(path)  # 0600, and SQLite gives its -wal and -shm files the same mode
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the memory file: {exc.strerror}") from None
        self.path = path
        self._max = max_turns
        self._ttl = ttl
        self._clock = clock
        self._archive_max = archive_turns
        self._archive_seconds = archive_days * 86400
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc
        self.journal = SQLiteJournal(self._run, clock)

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION in one transaction (a new file goes through schema 1)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: written by a newer version (schema {version})")
            if version < 1:
                for statement in _DDL_V1.split(";"):
                    if statement.strip():
                        db.execute(statement)
            if version < 2:
                for statement in _V1_TO_V2:
                    db.execute(statement)
                books: dict[str, list[Fact]] = {}
                for owner, fact in db.execute("SELECT owner, fact FROM facts ORDER BY owner, n"):
                    facts = books.setdefault(owner, [])
                    facts.append(Fact(len(facts) + 1, fact))
                for owner, facts in books.items():
                    db.execute("INSERT INTO fact_books VALUES (?,?)", (owner, FactBook(tuple(facts)).dumps()))
                db.execute("DROP TABLE facts")
                if version == 1:
                    log.info("memory: %s migrated from schema 1 to 2 (%d users' facts)", self.path, len(books))
            if version < 3:
                for statement in JOURNAL_DDL:
                    db.execute(statement)
            if version < 4:
                for statement in _V3_TO_V4:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    result = fn(self._db)
                    self._db.execute("COMMIT")
                    return result
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

        try:
            return await asyncio.to_thread(call)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Atomically append turns (assigning seq); those past the window's length move to the archive."""
        now = self._clock()

        def tx(db: sqlite3.Connection) -> list[Turn]:
            if self._ttl > 0:
                self._expire(db, now)
            return self._append_tx(db, str(key), turns, now)

        return await self._run(tx)

    async def append_each(self, items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> None:
        """Append turns to several sessions in one transaction; each session's part as `append` does."""
        now = self._clock()

        def tx(db: sqlite3.Connection) -> None:
            if self._ttl > 0:
                self._expire(db, now)
            for key, turns in items:
                if turns:
                    self._append_tx(db, str(key), turns, now)

        await self._run(tx)

    def _append_tx(self, db: sqlite3.Connection, session: str, turns: Sequence[Turn], now: float) -> list[Turn]:
        """One session's append, inside the caller's transaction."""
        db.execute("INSERT OR IGNORE INTO sessions (session) VALUES (?)", (session,))
        (seq,) = db.execute("SELECT seq FROM sessions WHERE session=?", (session,)).fetchone()
        out = []
        for i, turn in enumerate(turns, start=1):
            db.execute("INSERT INTO turns VALUES (?,?,?)", (session, seq + i, turn.dumps()))
            out.append(Turn.loads(turn.dumps(), seq=seq + i))
        last = seq + len(turns)
        db.execute("UPDATE sessions SET seq=?, active=? WHERE session=?", (last, now, session))
        edge = last - self._max  # turns up to here leave the window
        if self._archive_max > 0:
            db.execute(
                "INSERT OR IGNORE INTO archive SELECT session, seq, body, COALESCE(json_extract(body, '$.at'), 0)"
                " FROM turns WHERE session=? AND seq<=?",
                (session, edge),
            )
            db.execute("DELETE FROM archive WHERE session=? AND seq<=?", (session, edge - self._archive_max))
            if self._archive_seconds > 0:
                db.execute(
                    "DELETE FROM archive WHERE session=? AND at>0 AND at<?",
                    (session, now - self._archive_seconds),
                )
        else:
            db.execute("DELETE FROM archive WHERE session=?", (session,))
        db.execute("DELETE FROM turns WHERE session=? AND seq<=?", (session, edge))
        return out

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        # like a reset: numbering goes on and the summary floor moves up, so a late summary is refused
        old = [r[0] for r in db.execute("SELECT session FROM sessions WHERE active<?", (now - self._ttl,))]
        for session in old:
            db.execute("DELETE FROM turns WHERE session=?", (session,))
            db.execute("DELETE FROM archive WHERE session=?", (session,))
            db.execute("DELETE FROM contexts WHERE session=?", (session,))
            db.execute(
                "UPDATE sessions SET summary='', summary_upto=seq, floor=seq, active=? WHERE session=?",
                (now, session),
            )

    async def turns_since(self, key: SessionKey, after: int) -> TurnSpan:
        """Every stored turn (archive, then window) with seq > `after`, with the floor and the last seq."""

        def tx(db: sqlite3.Connection) -> TurnSpan:
            row = db.execute("SELECT seq, floor FROM sessions WHERE session=?", (str(key),)).fetchone()
            if row is None:
                return TurnSpan(0, 0)
            rows = db.execute(
                "SELECT seq, body FROM archive WHERE session=? AND seq>? UNION ALL "
                "SELECT seq, body FROM turns WHERE session=? AND seq>? ORDER BY seq",
                (str(key), after, str(key), after),
            ).fetchall()
            return TurnSpan(row[1], row[0], tuple(Turn.loads(body, seq=seq) for seq, body in rows))

        return await self._run(tx)

    async def sessions(self, offset: int, limit: int, query: str = "") -> SessionPage:
        """Sessions most recently active first (those whose key contains `query`), with the totals."""

        def tx(db: sqlite3.Connection) -> SessionPage:
            where, args = ("WHERE instr(session, ?) > 0", (query,)) if query else ("", ())
            total, turns = db.execute(f"SELECT COUNT(*), COALESCE(SUM(seq), 0) FROM sessions {where}", args).fetchone()
            rows = db.execute(
                f"SELECT session, active, seq FROM sessions {where} ORDER BY active DESC LIMIT ? OFFSET ?",
                (*args, max(0, limit), max(0, offset)),
            ).fetchall()
            items = [SessionInfo(key, active, seq) for session, active, seq in rows if (key := parse_session(session))]
            return SessionPage(total, turns, tuple(items))

        return await self._run(tx)

    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first."""
        if limit <= 0:
            return []

        def tx(db: sqlite3.Connection) -> list[Turn]:
            rows = db.execute(
                "SELECT seq, body FROM turns WHERE session=? ORDER BY seq DESC LIMIT ?",
                (str(key), limit),
            ).fetchall()
            return [Turn.loads(body, seq=seq) for seq, body in reversed(rows)]

        return await self._run(tx)

    async def summary(self, key: SessionKey) -> Summary:
        """The rolling summary (empty when none)."""

        def tx(db: sqlite3.Connection) -> Summary:
            row = db.execute(
                "SELECT summary, summary_upto FROM sessions WHERE session=?", (str(key),)
            ).fetchone()
            return Summary(text=row[0], upto=row[1]) if row else Summary()

        return await self._run(tx)

    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Store the summary unless a newer one (or a reset) is already there."""

        def tx(db: sqlite3.Connection) -> bool:
            db.execute("INSERT OR IGNORE INTO sessions (session) VALUES (?)", (str(key),))
            cur = db.execute(
                "UPDATE sessions SET summary=?, summary_upto=? WHERE session=? AND summary_upto<?",
                (summary.text, summary.upto, str(key), summary.upto),
            )
            return cur.rowcount == 1

        return await self._run(tx)

    async def reset(self, key: SessionKey) -> None:
        """Forget the session's turns (archived ones too), summary and last context, for everyone in it."""

        def tx(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM turns WHERE session=?", (str(key),))
            db.execute("DELETE FROM archive WHERE session=?", (str(key),))
            db.execute("DELETE FROM contexts WHERE session=?", (str(key),))
            db.execute(
                "UPDATE sessions SET summary='', summary_upto=seq, floor=seq WHERE session=?", (str(key),)
            )

        await self._run(tx)

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

    async def ping(self) -> None:
        """Raise StoreError when the store does not answer."""
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Release connections."""
        with self._lock:
            self._db.close()

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
