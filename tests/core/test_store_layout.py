"""Data stored before the stores were split reads back through each store, unchanged.

The keys, rows and JSON below are written by hand in the shapes the one-class RedisStore and
SQLiteStore wrote (rp:v2 keys, SQLite schema 4); each store then reads its part, and the turn log
goes on numbering where the old data stopped.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import redis

from core.conversation import Conversation
from core.turns import Cited, Fact, FactBook, LastContext, SessionKey, Summary, Turn
from memory.redis_link import RedisLink
from memory.redis_records import RedisCounters, RedisFacts, RedisReplies, RedisSettings
from memory.redis_turns import RedisTurnLog
from memory.sqlite_file import SQLiteFile
from memory.sqlite_records import SQLiteCounters, SQLiteFacts, SQLiteReplies, SQLiteSettings
from memory.sqlite_turns import SQLiteTurnLog

KEY = SessionKey("horo", "qq", "group", "30001")
SESSION = "horo:qq:group:30001"
WHERE = Conversation("qq", "group", "30001")
CHANNEL = "qq:group:30001"
OWNER = "horo:qq:20001"


def turn_json(text: str, user_id: str, name: str, role: str, at: float) -> str:
    """A stored turn as the old store wrote it (every field, the schema version last, no speaker)."""
    return json.dumps({"role": role, "text": text, "user_id": user_id, "name": name, "addressed": True, "at": at,
                       "message_id": "", "seq": 0, "partial": False, "v": 1}, ensure_ascii=False, separators=(",", ":"))


ARCHIVED = turn_json("从前的话", "20001", "罗伦斯", "user", 1700000000.0)
WINDOW = [turn_json("苹果呢？", "20001", "罗伦斯", "user", 1700000100.0),
          turn_json("咱要吃苹果。", "", "赫萝", "assistant", 1700000101.0)]
BOOK = json.dumps({"v": 2, "facts": [{"id": 1, "text": "喜欢苹果", "at": 1700000050.0, "conversation": "group:30001",
                                      "message_id": "m7", "seq": 2}], "noted": {"group:30001": 2}},
                  ensure_ascii=False, separators=(",", ":"))
WHY = json.dumps({"at": 1700000101.0, "user_id": "20001", "name": "罗伦斯", "message": "苹果呢？", "mode": "model",
                  "cited": [{"kind": "fact", "text": "喜欢苹果", "source": ""}], "seq": 3, "tokens": [["system", 120]],
                  "v": 3}, ensure_ascii=False, separators=(",", ":"))
OLD_WHY = json.dumps({"at": 1690000000.0, "message": "上一次", "mode": "model", "cited": [], "v": 2}, ensure_ascii=False)


def expected_turns() -> list[Turn]:
    """What the stored window reads as."""
    return [Turn("user", "苹果呢？", "20001", "罗伦斯", True, 1700000100.0, seq=2),
            Turn("assistant", "咱要吃苹果。", "", "赫萝", True, 1700000101.0, seq=3)]


def expected_book() -> FactBook:
    """What the stored fact book reads as."""
    return FactBook((Fact(1, "喜欢苹果", 1700000050.0, "group:30001", "m7", 2),), {"group:30001": 2})


def expected_why() -> LastContext:
    """What the stored reply context reads as."""
    return LastContext(1700000101.0, "20001", "罗伦斯", "苹果呢？", "model", (Cited("fact", "喜欢苹果"),), 3,
                       (("system", 120),))


async def reads_back(turns: Any, facts: Any) -> None:
    """The turns, archive, summary, session list and fact book the old layout holds, through the new stores."""
    assert await turns.recent(KEY, 10) == expected_turns()
    span = await turns.turns_since(KEY, 0)
    assert (span.floor, span.last) == (0, 3)
    assert [t.text for t in span.turns] == ["从前的话", "苹果呢？", "咱要吃苹果。"]
    assert await turns.summary(KEY) == Summary("罗伦斯问起苹果。", 1)
    page = await turns.sessions(0, 10)
    assert (page.total, page.turns, [(i.key, i.turns) for i in page.items]) == (1, 3, [(KEY, 3)])
    assert await facts.fact_book("horo", "qq", "20001") == expected_book()


async def test_redis_keys_of_the_one_class_store_read_back_through_each_store(redis_url: str, redis_prefix: str) -> None:
    assert str(KEY) == SESSION and WHERE.key == CHANNEL  # the key names the stores build
    ns = f"{redis_prefix}:v2"
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    raw.rpush(f"{ns}:s:{SESSION}:arch", f"1|{ARCHIVED}")
    raw.rpush(f"{ns}:s:{SESSION}:turns", *(f"{seq}|{body}" for seq, body in enumerate(WINDOW, start=2)))
    raw.set(f"{ns}:s:{SESSION}:seq", 3)
    raw.set(f"{ns}:s:{SESSION}:summary", json.dumps({"text": "罗伦斯问起苹果。", "upto": 1}, ensure_ascii=False))
    raw.set(f"{ns}:s:{SESSION}:done", "call-1|3")
    raw.zadd(f"{ns}:sessions", {SESSION: 1700000101.0})
    raw.set(f"{ns}:turn_count", 3)
    raw.set(f"{ns}:facts:{OWNER}", BOOK)
    raw.lpush(f"{ns}:s:{SESSION}:whys", WHY)
    raw.set(f"{ns}:s:horo:qq:dm:old:why", OLD_WHY)  # a conversation whose last reply predates the list of replies
    raw.hset(f"{ns}:settings:{CHANNEL}", mapping={"persona": "horo", "voice": "1"})
    raw.zadd(f"{ns}:rate:20001", {"hit-a": 1, "hit-b": 2})  # old hits: outside any window now
    link = RedisLink(redis_url, ns)
    turns, facts, replies = RedisTurnLog(link), RedisFacts(link), RedisReplies(link)
    settings, counters = RedisSettings(link), RedisCounters(link)
    try:
        await reads_back(turns, facts)
        assert await facts.facts("horo", "qq", "20001") == ["喜欢苹果"]
        assert await replies.last_context(KEY) == expected_why()
        old = await replies.contexts(SessionKey("horo", "qq", "dm", "old"), 5)
        assert [c.message for c in old] == ["上一次"]
        assert await settings.settings(WHERE) == {"persona": "horo", "voice": "1"}
        assert await counters.rate_hit("20001", 60, 1)  # the old hits fell out of the window
        stored = await turns.append(KEY, [Turn("user", "又来了", "20001", "罗伦斯")])
        assert stored[0].seq == 4 and int(raw.get(f"{ns}:turn_count") or 0) == 4
    finally:
        raw.close()
        await link.r.aclose()


# schema 4 as the one-class SQLiteStore left a file (memory/sqlite_file.py brings older files to it)
SCHEMA_4 = [
    "CREATE TABLE sessions (session TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0, summary TEXT NOT NULL DEFAULT '',"
    " summary_upto INTEGER NOT NULL DEFAULT 0, active REAL NOT NULL DEFAULT 0, floor INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE turns (session TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session, seq))",
    "CREATE TABLE settings (channel TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (channel, name))",
    "CREATE TABLE seen (key TEXT PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE INDEX sessions_active ON sessions (active)",
    "CREATE TABLE archive (session TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    " at REAL NOT NULL DEFAULT 0, PRIMARY KEY (session, seq))",
    "CREATE INDEX archive_at ON archive (session, at)",
    "CREATE TABLE fact_books (owner TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE journal (key TEXT PRIMARY KEY, owner TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX journal_at ON journal (at)",
    "CREATE TABLE journal_runs (run TEXT PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE TABLE contexts (n INTEGER PRIMARY KEY, session TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX contexts_session ON contexts (session, n)",
    "CREATE TABLE rate_hits (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX rate_hits_key ON rate_hits (key, at)",
    "PRAGMA user_version=4",
]


def write_schema_4(path: Path) -> None:
    """A memory file as the one-class store wrote it."""
    db = sqlite3.connect(path)
    for statement in SCHEMA_4:
        db.execute(statement)
    db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?)", (SESSION, 3, "罗伦斯问起苹果。", 1, 1700000101.0, 0))
    db.execute("INSERT INTO archive VALUES (?,?,?,?)", (SESSION, 1, ARCHIVED, 1700000000.0))
    db.executemany("INSERT INTO turns VALUES (?,?,?)", [(SESSION, seq, body) for seq, body in enumerate(WINDOW, start=2)])
    db.execute("INSERT INTO fact_books VALUES (?,?)", (OWNER, BOOK))
    db.execute("INSERT INTO contexts (session, body) VALUES (?,?)", ("horo:qq:dm:old", OLD_WHY))
    db.execute("INSERT INTO contexts (session, body) VALUES (?,?)", (SESSION, WHY))
    db.executemany("INSERT INTO settings VALUES (?,?,?)", [(CHANNEL, "persona", "horo"), (CHANNEL, "voice", "1")])
    db.execute("INSERT INTO rate_hits VALUES (?,?,?)", ("20001", 1700000000.0, 1700000060.0))
    db.commit()
    db.close()


async def test_sqlite_rows_of_the_one_class_store_read_back_through_each_store(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    write_schema_4(path)
    file = SQLiteFile(path)
    now = 1700000200.0
    turns = SQLiteTurnLog(file, clock=lambda: now)
    facts, replies, settings = SQLiteFacts(file), SQLiteReplies(file), SQLiteSettings(file)
    counters = SQLiteCounters(file, clock=lambda: now)
    try:
        await reads_back(turns, facts)
        assert await replies.last_context(KEY) == expected_why()
        assert [c.message for c in await replies.contexts(SessionKey("horo", "qq", "dm", "old"), 5)] == ["上一次"]
        assert await settings.settings(WHERE) == {"persona": "horo", "voice": "1"}
        assert await counters.rate_hit("20001", 60, 1)  # the old hit has expired
        assert not await counters.rate_hit("20001", 60, 1)
        stored = await turns.append(KEY, [Turn("user", "又来了", "20001", "罗伦斯")])
        assert stored[0].seq == 4
    finally:
        await file.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4  # opened as it was: nothing to migrate
    db.close()
