"""The stores in one SQLite file (memory/sqlite_file.py): the embedded default when no Redis answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from memory.sqlite_file import SCHEMA_VERSION, SQLiteFile
from memory.sqlite_journal import SQLiteJournal
from memory.sqlite_records import SQLiteCounters, SQLiteFacts, SQLiteReplies, SQLiteSettings
from memory.sqlite_turns import SQLiteTurnLog
from memory.store import Stores

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]


class SQLiteStore(Stores):
    """Embedded stores: one file, WAL journal, calls run in a worker thread."""

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
        self.file = file = SQLiteFile(path)
        self.path = path
        self._db = file.db
        turns = SQLiteTurnLog(file, max_turns, ttl, clock, archive_turns=archive_turns, archive_days=archive_days)
        super().__init__("sqlite", turns, turns, SQLiteFacts(file), SQLiteReplies(file), SQLiteSettings(file),
                         SQLiteCounters(file, clock), SQLiteJournal(file.run, clock), self._ping, file.close)

    async def _ping(self) -> None:
        await self.file.run(lambda db: db.execute("SELECT 1").fetchone())
