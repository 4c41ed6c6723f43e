"""The SQLite file every SQLite store shares: one connection, WAL journal, calls in a worker thread.

Schema 4 (PRAGMA user_version): the window (`turns`) and the archive of older turns (`archive`),
a row per session (`sessions`: seq, summary, floor, last active), one JSON fact book per user
(`fact_books`), what the last replies were given (`contexts`), channel `settings`, `rate_hits`
and the journal of messages not yet answered (memory/sqlite_journal.py). An older file is migrated
in one transaction on open.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from core.files import private_file
from core.stores import StoreError
from core.turns import Fact, FactBook
from memory.sqlite_journal import DDL as JOURNAL_DDL

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


class SQLiteFile:
    """The connection to one memory file, brought to SCHEMA_VERSION when opened."""

    def __init__(self, path: Path):
        try:
            private_file(path)  # 0600, and SQLite gives its -wal and -shm files the same mode
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the memory file: {exc.strerror}") from None
        self.path = path
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION in one transaction (a new file goes through schema 1)."""
        db = self.db
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

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in one transaction in a worker thread; a database error becomes StoreError."""

        def call() -> T:
            with self._lock:
                try:
                    self.db.execute("BEGIN IMMEDIATE")
                    result = fn(self.db)
                    self.db.execute("COMMIT")
                    return result
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise

        try:
            return await asyncio.to_thread(call)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection (after any call in flight)."""
        with self._lock:
            self.db.close()
