"""What a reply was given is written behind the reply, and still read in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.turns import LastContext, SessionKey
from memory.resilient import ResilientStore
from memory.sqlite_store import SQLiteStore

KEY = SessionKey("horo", "test", "dm", "u1")


class Gated:
    """The SQLite store's reply records, whose writes wait until the gate opens."""

    def __init__(self, inner: object, gate: asyncio.Event):
        self.inner, self.gate = inner, gate

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        await self.gate.wait()
        await self.inner.set_last_context(key, context)  # type: ignore[attr-defined]


async def test_a_record_is_written_behind_its_reply_and_reads_wait_for_it(tmp_path: Path) -> None:
    sqlite = SQLiteStore(tmp_path / "m.sqlite3")
    gate = asyncio.Event()
    sqlite.replies = Gated(sqlite.replies, gate)  # type: ignore[assignment]
    store = ResilientStore(sqlite)
    try:
        for n in (1, 2, 3):  # none of these waits for its write
            await asyncio.wait_for(store.replies.set_last_context(KEY, LastContext(message=f"m{n}", seq=n)), 0.5)
        reading = asyncio.ensure_future(store.replies.last_context(KEY))
        await asyncio.sleep(0.05)
        assert not reading.done()  # the read waits for the conversation's writes
        gate.set()
        last = await asyncio.wait_for(reading, 5)
        assert last is not None and last.message == "m3"
        assert [c.seq for c in await store.replies.contexts(KEY, 5)] == [3, 2, 1]  # written in order
        other = SessionKey("horo", "test", "dm", "u2")
        assert await store.replies.last_context(other) is None
    finally:
        gate.set()
        await store.close()


async def test_a_record_on_its_way_at_close_is_written(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = ResilientStore(SQLiteStore(path))
    await store.replies.set_last_context(KEY, LastContext(message="last words", seq=9))
    await store.close()
    again = SQLiteStore(path)
    try:
        last = await again.replies.last_context(KEY)
        assert last is not None and last.message == "last words"
    finally:
        await again.close()
