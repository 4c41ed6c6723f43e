"""The v1 stores' write paths as they were (rp:v1 keys, SQLite schema 1), to write v1 data the old way.

The Lua scripts and SQL below are copied unchanged from the v1 RedisStore and SQLiteStore; the
migration tests write with them, then open the same data with the current stores.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import redis

from memory.turns import SessionKey, Turn

_APPEND = """
local done = redis.call('GET', KEYS[4])
if done then
  local sep = string.find(done, '|', 1, true)
  if string.sub(done, 1, sep - 1) == ARGV[3] then return tonumber(string.sub(done, sep + 1)) end
end
local n = #ARGV - 3
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
-- numbering restarts when the counter expired: a summary (or reset floor) left over would hide turns
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[3]) end
local last = redis.call('INCRBY', KEYS[2], n)
for i = 1, n do
  redis.call('RPUSH', KEYS[1], tostring(last - n + i) .. '|' .. ARGV[i + 3])
end
redis.call('LTRIM', KEYS[1], -maxlen, -1)
redis.call('SET', KEYS[4], ARGV[3] .. '|' .. last)
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  redis.call('EXPIRE', KEYS[4], ttl)
end
return last
"""

_SET_SUMMARY = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local upto = tonumber(cjson.decode(cur)['upto'])
  if upto >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

_ADD_FACTS = """
local limit = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('LREM', KEYS[1], 0, ARGV[i])
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
if limit > 0 then redis.call('LTRIM', KEYS[1], -limit, -1) else redis.call('DEL', KEYS[1]) end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""

_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""

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


def v1_turn(turn: Turn) -> str:
    """A turn as v1 serialized it (schema 1 fields)."""
    data = {k: getattr(turn, k) for k in ("role", "text", "user_id", "name", "addressed", "at", "message_id", "seq", "partial")}
    data["v"] = 1
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class V1Redis:
    """The v1 RedisStore's writes under `prefix` (e.g. "rptest:abc:v1")."""

    def __init__(self, url: str, prefix: str, max_turns: int = 200, ttl: int = 0):
        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.p, self.max, self.ttl = prefix, max_turns, ttl
        self._append = self.r.register_script(_APPEND)
        self._summary = self.r.register_script(_SET_SUMMARY)
        self._facts = self.r.register_script(_ADD_FACTS)
        self._claim = self.r.register_script(_CLAIM)
        self.calls = 0

    def _k(self, key: SessionKey, part: str) -> str:
        return f"{self.p}:s:{key}:{part}"

    def append(self, key: SessionKey, turns: Sequence[Turn]) -> int:
        self.calls += 1
        keys = [self._k(key, part) for part in ("turns", "seq", "summary", "done")]
        return int(self._append(keys=keys, args=[self.max, self.ttl, f"call{self.calls}", *(v1_turn(t) for t in turns)]))

    def set_summary(self, key: SessionKey, text: str, upto: int) -> None:
        body = json.dumps({"text": text, "upto": upto}, ensure_ascii=False)
        self._summary(keys=[self._k(key, "summary")], args=[body, upto, self.ttl])

    def add_facts(self, persona: str, platform: str, user_id: str, facts: Sequence[str], limit: int = 12) -> None:
        self._facts(keys=[f"{self.p}:facts:{persona}:{platform}:{user_id}"], args=[limit, *facts])

    def set_setting(self, platform: str, channel: str, name: str, value: str) -> None:
        self.r.hset(f"{self.p}:settings:{platform}:{channel}", name, value)

    def claim(self, platform: str, bot_id: str, conversation: str, message_id: str, ttl: int) -> bool:
        key = f"{self.p}:seen:{platform}:{bot_id}:{conversation}:{message_id}"
        return bool(self._claim(keys=[key], args=["tok", ttl]))

    def close(self) -> None:
        self.r.close()


class V1SQLite:
    """The v1 SQLiteStore's writes: a schema-1 file."""

    def __init__(self, path: Path, max_turns: int = 200):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_DDL)
        self.db.execute("PRAGMA user_version=1")
        self.max = max_turns

    def append(self, key: SessionKey, turns: Sequence[Turn], now: float) -> None:
        db, session = self.db, str(key)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR IGNORE INTO sessions (session) VALUES (?)", (session,))
        (seq,) = db.execute("SELECT seq FROM sessions WHERE session=?", (session,)).fetchone()
        for i, turn in enumerate(turns, start=1):
            db.execute("INSERT INTO turns VALUES (?,?,?)", (session, seq + i, v1_turn(turn)))
        last = seq + len(turns)
        db.execute("UPDATE sessions SET seq=?, active=? WHERE session=?", (last, now, session))
        db.execute("DELETE FROM turns WHERE session=? AND seq<=?", (session, last - self.max))
        db.execute("COMMIT")

    def set_summary(self, key: SessionKey, text: str, upto: int) -> None:
        self.db.execute(
            "UPDATE sessions SET summary=?, summary_upto=? WHERE session=? AND summary_upto<?", (text, upto, str(key), upto)
        )

    def add_facts(self, persona: str, platform: str, user_id: str, facts: Sequence[str]) -> None:
        owner = f"{persona}:{platform}:{user_id}"
        (top,) = self.db.execute("SELECT COALESCE(MAX(n), 0) FROM facts WHERE owner=?", (owner,)).fetchone()
        for i, fact in enumerate(facts, start=1):
            self.db.execute("INSERT OR REPLACE INTO facts VALUES (?,?,?)", (owner, fact, top + i))

    def set_setting(self, platform: str, channel: str, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings VALUES (?,?,?)", (f"{platform}:{channel}", name, value))

    def claim(self, key: str, expires: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO seen VALUES (?,?)", (key, expires))

    def close(self) -> None:
        self.db.close()
