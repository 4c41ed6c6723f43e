"""Conversation store in one SQLite file: the embedded default when no Redis answers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from memory.store import StoreError
from memory.turns import SessionKey, Summary, Turn

T = TypeVar("T")
SCHEMA_VERSION = 1

_DDL = """
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


class SQLiteStore:
    """Embedded store: one file, WAL journal, calls run in a worker thread."""

    name = "sqlite"

    def __init__(
        self,
        path: Path,
        max_turns: int = 200,
        ttl: float = 0.0,
        clock: Callable[[], float] = time.time,
    ):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path.parent}: cannot create the data folder: {exc.strerror}") from None
        self.path = path
        self._max = max_turns
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path}: written by a newer version (schema {version})")
            self._db.executescript(_DDL)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc

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
        """Atomically append turns (assigning seq) and trim to the configured length."""
        session, now = str(key), self._clock()

        def tx(db: sqlite3.Connection) -> list[Turn]:
            if self._ttl > 0:
                self._expire(db, now)
            db.execute("INSERT OR IGNORE INTO sessions (session) VALUES (?)", (session,))
            (seq,) = db.execute("SELECT seq FROM sessions WHERE session=?", (session,)).fetchone()
            out = []
            for i, turn in enumerate(turns, start=1):
                db.execute("INSERT INTO turns VALUES (?,?,?)", (session, seq + i, turn.dumps()))
                out.append(Turn.loads(turn.dumps(), seq=seq + i))
            last = seq + len(turns)
            db.execute("UPDATE sessions SET seq=?, active=? WHERE session=?", (last, now, session))
            db.execute("DELETE FROM turns WHERE session=? AND seq<=?", (session, last - self._max))
            return out

        return await self._run(tx)

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        # like a reset: numbering goes on and the summary floor moves up, so a late summary is refused
        old = [r[0] for r in db.execute("SELECT session FROM sessions WHERE active<?", (now - self._ttl,))]
        for session in old:
            db.execute("DELETE FROM turns WHERE session=?", (session,))
            db.execute(
                "UPDATE sessions SET summary='', summary_upto=seq, active=? WHERE session=?", (now, session)
            )

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
        """Forget the session's turns and summary, for everyone in it."""

        def tx(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM turns WHERE session=?", (str(key),))
            db.execute(
                "UPDATE sessions SET summary='', summary_upto=seq WHERE session=?", (str(key),)
            )

        await self._run(tx)

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """What the persona remembers about a user, oldest first."""
        owner = f"{persona}:{platform}:{user_id}"
        return await self._run(lambda db: _facts(db, owner))

    async def add_facts(
        self, persona: str, platform: str, user_id: str, facts: Sequence[str], limit: int
    ) -> list[str]:
        """Add new facts (duplicates ignored), keep the newest `limit`, return the list."""
        owner = f"{persona}:{platform}:{user_id}"

        def tx(db: sqlite3.Connection) -> list[str]:
            (top,) = db.execute("SELECT COALESCE(MAX(n), 0) FROM facts WHERE owner=?", (owner,)).fetchone()
            for i, fact in enumerate(facts, start=1):
                db.execute("INSERT OR REPLACE INTO facts VALUES (?,?,?)", (owner, fact, top + i))
            db.execute(
                "DELETE FROM facts WHERE owner=? AND n NOT IN "
                "(SELECT n FROM facts WHERE owner=? ORDER BY n DESC LIMIT ?)",
                (owner, owner, limit),
            )
            return _facts(db, owner)

        return await self._run(tx)

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user."""
        owner = f"{persona}:{platform}:{user_id}"
        await self._run(lambda db: db.execute("DELETE FROM facts WHERE owner=?", (owner,)))

    async def settings(self, platform: str, channel: str) -> dict[str, str]:
        """Per-channel settings (persona, voice, max_chapter...)."""
        rows: list[Any] = await self._run(
            lambda db: db.execute(
                "SELECT name, value FROM settings WHERE channel=?", (f"{platform}:{channel}",)
            ).fetchall()
        )
        return {name: value for name, value in rows}

    async def set_setting(self, platform: str, channel: str, name: str, value: str | None) -> None:
        """Set (or with None, remove) one per-channel setting."""
        channel_key = f"{platform}:{channel}"
        args: tuple[str, ...]
        if value is None:
            sql, args = "DELETE FROM settings WHERE channel=? AND name=?", (channel_key, name)
        else:
            sql, args = "INSERT OR REPLACE INTO settings VALUES (?,?,?)", (channel_key, name, value)
        await self._run(lambda db: db.execute(sql, args))

    async def claim(self, platform: str, bot_id: str, conversation: str, message_id: str, ttl: float) -> bool:
        """True the first time this bot sees the message id in the conversation within `ttl` seconds."""
        # rows of the old shape (<platform>:<id>) are never matched again and expire with the rest
        key, now = f"{platform}:{bot_id}:{conversation}:{message_id}", self._clock()

        def tx(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM seen WHERE expires<?", (now,))
            cur = db.execute("INSERT OR IGNORE INTO seen VALUES (?,?)", (key, now + ttl))
            return cur.rowcount == 1

        return await self._run(tx)

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


def _facts(db: sqlite3.Connection, owner: str) -> list[str]:
    rows = db.execute("SELECT fact FROM facts WHERE owner=? ORDER BY n", (owner,)).fetchall()
    return [r[0] for r in rows]
