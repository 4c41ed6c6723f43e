"""The turn log and the summaries in the SQLite file: `turns` (the window), `archive`, and a `sessions`
row per conversation (last seq, summary, floor, last active)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from core.turns import SessionInfo, SessionKey, SessionPage, Summary, Turn, TurnSpan, parse_session
from memory.sqlite_file import SQLiteFile


class SQLiteTurnLog:
    """TurnLog and Summaries in the file: a conversation's turns and summary change in one transaction."""

    def __init__(
        self,
        file: SQLiteFile,
        max_turns: int = 200,
        ttl: float = 0.0,
        clock: Callable[[], float] = time.time,
        *,
        archive_turns: int = 10_000,
        archive_days: float = 0.0,
    ):
        self._run = file.run
        self._max = max_turns
        self._ttl = ttl
        self._clock = clock
        self._archive_max = archive_turns
        self._archive_seconds = archive_days * 86400

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
