"""rp:v1 → rp:v2 and SQLite schema 1 → 2: data written the old way is all there after the upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis

from core.config import MemoryConfig
from core.conversation import Conversation
from core.messages import Incoming
from memory.journal import Entry, Route
from memory.open import open_store
from memory.redis_store import RedisStore
from memory.sqlite_store import SCHEMA_VERSION, SQLiteStore
from memory.store import ConversationStore, StoreError
from memory.turns import LastContext, SessionKey, Turn
from tests.conftest import MakeSettings
from tests.core.v1_stores import V1Redis, V1SQLite

GROUP = SessionKey("horo", "qq", "group", "30001")
DM = SessionKey("wukong", "discord", "dm", "42")


def exchange(i: int, at: float = 1_700_000_000.0) -> list[Turn]:
    return [Turn("user", f"第{i}句", "u1", "阿青", True, at + i, f"m{i}"), Turn("assistant", f"回答{i}", "", "赫萝", True, at + i)]


def memory_cfg(redis_url: str, prefix: str, **extra: object) -> MemoryConfig:
    return MemoryConfig.model_validate({"backend": "redis", "redis_url": redis_url, "key_prefix": prefix, **extra})


async def check_v1_data(store: ConversationStore, turns_in_group: int) -> None:
    """Everything the v1 writer wrote (see write_v1), read through the v2 store."""
    window = await store.recent(GROUP, 1000)
    assert [t.text for t in window if t.role == "user"] == [f"第{i}句" for i in range(turns_in_group)]
    assert [t.seq for t in window] == list(range(1, 2 * turns_in_group + 1))
    assert window[0].name == "阿青" and window[0].at == 1_700_000_000.0 and window[0].message_id == "m0"
    assert (await store.summary(GROUP)).text == "阿青在群里数数。"
    assert (await store.summary(GROUP)).upto == 4
    assert [t.text for t in await store.recent(DM, 10)] == ["第0句", "回答0"]
    assert await store.facts("horo", "qq", "u1") == ["养了一只猫叫团子", "住在杭州"]
    book = await store.fact_book("horo", "qq", "u1")
    # facts of unknown time and place may have been said in private: shown in private chats, never in a group
    assert [f.text for f in book.visible("dm:u1", shared=False)] == ["养了一只猫叫团子", "住在杭州"]
    assert book.visible("group:999", shared=True) == []
    assert await store.settings(Conversation("qq", "group", "30001")) == {"persona": "horo", "voice": "on"}
    seen = Incoming("qq", "30001", "u1", "阿青", "第77句", message_id="m77", bot_id="10001")
    assert await store.journal.enter(Entry(seen, Route(), 1.0), "run-a") == "done"  # seen before the upgrade
    # numbering goes on where v1 left it
    added = await store.append(GROUP, exchange(99))
    assert added[0].seq == 2 * turns_in_group + 1


def write_v1(v1: V1Redis | V1SQLite, turns_in_group: int) -> None:
    for i in range(turns_in_group):
        if isinstance(v1, V1Redis):
            v1.append(GROUP, exchange(i))
        else:
            v1.append(GROUP, exchange(i), 1_700_000_000.0)
    if isinstance(v1, V1Redis):
        v1.append(DM, exchange(0))
    else:
        v1.append(DM, exchange(0), 1_700_000_000.0)
    v1.set_summary(GROUP, "阿青在群里数数。", 4)
    v1.add_facts("horo", "qq", "u1", ["养了一只猫叫团子", "住在杭州"])
    v1.set_setting("qq", "group:30001", "persona", "horo")
    v1.set_setting("qq", "group:30001", "voice", "on")


async def test_redis_v1_data_is_all_there_after_the_upgrade(redis_url: str, redis_prefix: str) -> None:
    v1 = V1Redis(redis_url, f"{redis_prefix}:v1")
    try:
        write_v1(v1, 5)
        v1.claim("qq", "10001", "group:30001", "m77", 3600)
        v1.r.set(f"{redis_prefix}:v1:rate:qq:u1", "x", ex=100)
    finally:
        v1.close()
    store = await open_store(memory_cfg(redis_url, redis_prefix))
    try:
        await check_v1_data(store, 5)
    finally:
        await store.close()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # TTLs travel with the keys; the v1 keys are left where they were
        assert 0 < client.ttl(f"{redis_prefix}:v2:seen:qq:10001:group:30001:m77") <= 3600
        assert 0 < client.ttl(f"{redis_prefix}:v2:rate:qq:u1") <= 100
        assert client.exists(f"{redis_prefix}:v1:facts:horo:qq:u1")
        assert client.exists(f"{redis_prefix}:v2:migrated")
    finally:
        client.close()


async def test_redis_migration_is_idempotent_and_never_overwrites_v2(redis_url: str, redis_prefix: str) -> None:
    v1 = V1Redis(redis_url, f"{redis_prefix}:v1")
    try:
        write_v1(v1, 3)
    finally:
        v1.close()
    store = RedisStore(redis_url, f"{redis_prefix}:v2")
    try:
        assert await store.migrate(f"{redis_prefix}:v1") > 0
        assert await store.migrate(f"{redis_prefix}:v1") == 0  # the marker: nothing to do
        await store.append(GROUP, exchange(3))
        await store.set_setting(Conversation("qq", "group", "30001"), "voice", "off")
        # an interrupted run (no marker yet) goes again: keys already in v2 are left alone
        await store._r.delete(f"{redis_prefix}:v2:migrated")
        assert await store.migrate(f"{redis_prefix}:v1") == 0
        window = await store.recent(GROUP, 100)
        assert [t.text for t in window if t.role == "user"] == ["第0句", "第1句", "第2句", "第3句"]
        assert (await store.settings(Conversation("qq", "group", "30001")))["voice"] == "off"
        assert await store.facts("horo", "qq", "u1") == ["养了一只猫叫团子", "住在杭州"]
    finally:
        await store.close()


async def test_an_old_key_prefix_setting_names_the_namespace(
    redis_url: str, redis_prefix: str, make_settings: MakeSettings
) -> None:
    # a config.toml from v1 says key_prefix = "<ns>:v1": the bot reads it as the namespace
    settings = make_settings(memory={"backend": "redis", "redis_url": redis_url, "key_prefix": f"{redis_prefix}:v1"})
    assert settings.memory.key_prefix == redis_prefix
    v1 = V1Redis(redis_url, f"{redis_prefix}:v1")
    try:
        write_v1(v1, 2)
    finally:
        v1.close()
    store = await open_store(settings.memory)
    try:
        assert (await store.summary(GROUP)).text == "阿青在群里数数。"
    finally:
        await store.close()


async def test_sqlite_schema_1_file_is_migrated_once(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    v1 = V1SQLite(path)
    write_v1(v1, 5)
    v1.claim("qq:10001:group:30001:m77", 4_000_000_000.0)
    v1.close()
    store = SQLiteStore(path)
    try:
        await check_v1_data(store, 5)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='facts'").fetchone()[0] == 0
    again = SQLiteStore(path)  # opening a file of the current schema changes nothing
    try:
        assert await again.facts("horo", "qq", "u1") == ["养了一只猫叫团子", "住在杭州"]
        assert len(await again.recent(GROUP, 100)) == 12
    finally:
        await again.close()


async def test_sqlite_schema_3_keeps_the_last_replys_context(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    SQLiteStore(path)._db.close()
    with sqlite3.connect(path) as db:  # the file as schema 3 left it: one context per session
        db.execute("DROP TABLE contexts")
        db.execute("CREATE TABLE last_context (session TEXT PRIMARY KEY, body TEXT NOT NULL)")
        db.execute("INSERT INTO last_context VALUES (?, ?)", (str(GROUP), LastContext(5.0, message="old").dumps()))
        db.execute("PRAGMA user_version=3")
    store = SQLiteStore(path)
    try:
        assert [c.message for c in await store.contexts(GROUP, 5)] == ["old"]
        await store.set_last_context(GROUP, LastContext(6.0, message="new"))
        assert [c.message for c in await store.contexts(GROUP, 5)] == ["new", "old"]
    finally:
        await store.close()


async def test_sqlite_refuses_a_file_from_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer version"):
        SQLiteStore(path)


async def test_redis_conversations_from_before_the_session_list_are_added_to_it_at_start(
    redis_url: str, redis_prefix: str
) -> None:
    cfg = memory_cfg(redis_url, redis_prefix)
    ns = f"{redis_prefix}:v2"
    old = RedisStore(redis_url, prefix=ns)
    third = SessionKey("yexiu", "qq", "group", "7:8")  # an id with a colon
    try:
        await old.append(GROUP, exchange(1, 1_700_000_000.0) + exchange(2, 1_700_000_000.0))
        await old.append(DM, exchange(1, 1_700_000_500.0))
        await old.append(third, exchange(1, 1_700_000_900.0))
        await old.reset(third)  # its turns are gone: it is listed, with no time of activity
    finally:
        await old.close()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # as an older version left it: no session list; then a newer process noted DM with one later exchange
        raw.delete(f"{ns}:sessions", f"{ns}:turn_count")
        raw.zadd(f"{ns}:sessions", {str(DM): 1_800_000_000.0})
        raw.incrby(f"{ns}:turn_count", 2)
        store = await open_store(cfg)
        try:
            page = await store.sessions(0, 10)
            assert [(i.key, i.active, i.turns) for i in page.items] == [
                (DM, 1_800_000_000.0, 2), (GROUP, 1_700_000_002.0, 4), (third, 0.0, 2)]
            assert page.total == 3 and page.turns == 2 + 4 + 2  # DM's were counted when it was noted
        finally:
            await store.close()
        raw.zrem(f"{ns}:sessions", str(GROUP))
        again = await open_store(cfg)  # once only: a later start does not scan again
        try:
            assert (await again.sessions(0, 10)).total == 2
        finally:
            await again.close()
    finally:
        raw.close()
