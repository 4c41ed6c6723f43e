"""One contract, two real backends: Redis and SQLite behave the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.conversation import Conversation
from core.messages import Attachment, Incoming
from memory.journal import Adopted, Entry, Route
from memory.redis_store import RedisStore
from memory.sqlite_store import SQLiteStore
from memory.store import ConversationStore, StoreError
from memory.turns import CITED_CHARS, CONTEXTS_KEPT, Cited, Fact, FactBook, LastContext, SessionKey, Summary, Turn

KEY = SessionKey("horo", "test", "group", "c1")
OTHER = SessionKey("yexiu", "test", "group", "c1")

Opener = Callable[[], ConversationStore]


class Wall:
    """The stores' wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> Wall:
    """The wall clock every store of the test reads."""
    return Wall()


@pytest.fixture(params=["redis", "sqlite"])
async def opener(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str, wall: Wall
) -> AsyncIterator[Opener]:
    """Opens a store of the backend under test; reopening reaches the same data."""
    opened: list[ConversationStore] = []

    def make() -> ConversationStore:
        store: ConversationStore
        if request.param == "redis":
            store = RedisStore(redis_url, prefix=redis_prefix, max_turns=5, wall=wall)
        else:
            store = SQLiteStore(tmp_path / "m.sqlite3", max_turns=5, clock=wall)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def user(text: str, uid: str = "u1") -> Turn:
    return Turn("user", text, uid, "Alice")


async def test_append_numbers_and_trims(opener: Opener) -> None:
    store = opener()
    first = await store.append(KEY, [user("a"), Turn("assistant", "b")])
    assert [t.seq for t in first] == [1, 2]
    for i in range(6):
        await store.append(KEY, [user(f"m{i}")])
    turns = await store.recent(KEY, 100)
    assert [t.text for t in turns] == ["m1", "m2", "m3", "m4", "m5"]
    assert [t.seq for t in turns] == [4, 5, 6, 7, 8]
    assert [t.text for t in await store.recent(KEY, 2)] == ["m4", "m5"]
    assert turns[0].user_id == "u1" and turns[0].name == "Alice"


async def test_append_each_appends_to_several_sessions_at_once(opener: Opener) -> None:
    store = opener()
    await store.append(KEY, [user("before")])
    await store.append_each([(KEY, [user("a"), Turn("assistant", "b")]), (OTHER, [user("c")]),
                             (SessionKey("wukong", "test", "group", "c1"), [])])
    assert [(t.text, t.seq) for t in await store.recent(KEY, 10)] == [("before", 1), ("a", 2), ("b", 3)]
    assert [(t.text, t.seq) for t in await store.recent(OTHER, 10)] == [("c", 1)]
    assert await store.recent(SessionKey("wukong", "test", "group", "c1"), 10) == []
    for i in range(6):  # the window's length holds here too
        await store.append_each([(KEY, [user(f"m{i}")]), (OTHER, [user(f"n{i}")])])
    assert [t.text for t in await store.recent(OTHER, 100)] == ["n1", "n2", "n3", "n4", "n5"]
    page = await store.sessions(0, 10)
    assert {str(i.key) for i in page.items} >= {str(KEY), str(OTHER)}
    await store.append_each([])


async def test_concurrent_appends_never_collide(opener: Opener) -> None:
    store = opener()
    results = await asyncio.gather(*(store.append(KEY, [user(f"x{i}"), user(f"y{i}")]) for i in range(10)))
    seqs = sorted(t.seq for batch in results for t in batch)
    assert seqs == list(range(1, 21))
    for batch in results:  # each pair stays adjacent: the append is atomic
        assert batch[1].seq == batch[0].seq + 1


async def test_history_survives_reopen(opener: Opener) -> None:
    await opener().append(KEY, [user("remember me")])
    again = opener()
    assert [t.text for t in await again.recent(KEY, 10)] == ["remember me"]


async def test_personas_do_not_share_history(opener: Opener) -> None:
    store = opener()
    await store.append(KEY, [user("for horo")])
    assert await store.recent(OTHER, 10) == []


async def test_summary_only_moves_forward_and_reset_sets_a_floor(opener: Opener) -> None:
    store = opener()
    await store.append(KEY, [user("1"), user("2"), user("3")])
    assert await store.summary(KEY) == Summary()
    assert await store.set_summary(KEY, Summary("two", 2))
    assert not await store.set_summary(KEY, Summary("older", 1))
    assert (await store.summary(KEY)).text == "two"
    await store.reset(KEY)
    assert await store.recent(KEY, 10) == []
    assert (await store.summary(KEY)).text == ""
    # a summary computed before the reset arrives late: refused
    assert not await store.set_summary(KEY, Summary("stale", 3))
    new = await store.append(KEY, [user("after")])
    assert new[0].seq == 4
    assert await store.set_summary(KEY, Summary("fresh", 4))


async def test_fact_books_change_atomically_per_persona(opener: Opener) -> None:
    store = opener()

    def adding(text: str) -> Callable[[FactBook], FactBook]:
        return lambda book: FactBook((*book.facts, Fact(len(book.facts) + 1, text, 5.0, "group:c1")), book.noted)

    # concurrent changes of one user's facts: none is lost
    await asyncio.gather(*(store.change_facts("horo", "test", "u1", adding(f"事实{i}")) for i in range(8)))
    assert sorted(await store.facts("horo", "test", "u1")) == sorted(f"事实{i}" for i in range(8))
    book = await opener().fact_book("horo", "test", "u1")
    assert book.facts[0].at == 5.0 and book.facts[0].conversation == "group:c1"
    assert await store.facts("yexiu", "test", "u1") == []
    await store.forget_user("horo", "test", "u1")
    assert await store.facts("horo", "test", "u1") == []


async def test_settings(opener: Opener) -> None:
    store = opener()
    await store.set_setting(Conversation("test", "group", "c1"), "persona", "wukong")
    await store.set_setting(Conversation("test", "group", "c1"), "voice", "on")
    assert await store.settings(Conversation("test", "group", "c1")) == {"persona": "wukong", "voice": "on"}
    await store.set_setting(Conversation("test", "group", "c1"), "voice", None)
    assert await opener().settings(Conversation("test", "group", "c1")) == {"persona": "wukong"}


async def test_sqlite_ttl_forgets_idle_sessions(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteStore(tmp_path / "t.sqlite3", ttl=100, clock=lambda: now[0])
    try:
        await store.append(KEY, [user("old")])
        now[0] += 500
        await store.append(OTHER, [user("new")])
        assert await store.recent(KEY, 10) == []
        assert [t.text for t in await store.recent(OTHER, 10)] == ["new"]
    finally:
        await store.close()


async def test_redis_ttl_is_set(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix, ttl=3600)
    try:
        await store.append(KEY, [user("x")])
        ttl = await store._r.ttl(f"{redis_prefix}:s:{KEY}:turns")
        assert 3500 < ttl <= 3600
    finally:
        await store.close()


async def test_unreachable_redis_is_a_store_error_after_bounded_retries() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", retry_seconds=0)
    try:
        with pytest.raises(StoreError, match=r"redis ping failed: .*\[memory\] redis_url"):
            await store.ping()
    finally:
        await store.close()
    store = RedisStore("redis://127.0.0.1:1/0", retry_seconds=0.6)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError):
            await store.append(KEY, [user("lost?")])
        assert 0.6 <= time.monotonic() - started < 2.0
    finally:
        await store.close()


def test_malformed_redis_url_is_one_line() -> None:
    with pytest.raises(StoreError, match=r"^\[memory\] redis_url is not a Redis URL; write it like redis://"):
        RedisStore("redis//x")


async def test_burst_through_a_small_pool_loses_nothing(redis_url: str, redis_prefix: str) -> None:
    # 500 concurrent appends and journal entries share 8 connections: they wait for one instead of failing
    store = RedisStore(redis_url, prefix=redis_prefix, max_turns=1000, max_connections=8, pool_timeout=10)
    keys = [SessionKey("horo", "qq", "group", f"g{i}") for i in range(50)]
    try:

        async def one(i: int) -> tuple[str, list[Turn]]:
            key = keys[i % 50]
            msg = Incoming("qq", key.id, "u1", "Alice", f"q{i}", message_id=str(i), bot_id="10001")
            journaled = await store.journal.enter(Entry(msg, Route(), time.time()), "run-a")
            return journaled, await store.append(key, [user(f"q{i}"), Turn("assistant", f"a{i}")])

        results = await asyncio.gather(*(one(i) for i in range(500)))
        assert all(journaled == "new" for journaled, _ in results)
        for n, key in enumerate(keys):
            texts = [t.text for t in await store.recent(key, 1000)]
            assert sorted(texts) == sorted([f"q{i}" for i in range(n, 500, 50)] + [f"a{i}" for i in range(n, 500, 50)])
        pool = store._r.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 8
    finally:
        await store.close()


async def test_redis_retries_of_one_call_land_once(redis_url: str, redis_prefix: str) -> None:
    # a retry after a lost reply repeats the call id: the turns are not stored twice
    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        turns = [user("once"), Turn("assistant", "only once")]
        assert await store.turns._append_once([(KEY, turns)], ["call-1"]) == [2]
        assert await store.turns._append_once([(KEY, turns)], ["call-1"]) == [2]
        assert [t.text for t in await store.recent(KEY, 10)] == ["once", "only once"]
        assert await store.turns._append_once([(KEY, turns)], ["call-2"]) == [4]  # a new call is a new exchange
    finally:
        await store.close()


def received(mid: str, group: str = "g1", bot: str = "10001", at: float = 0.0, **kw: object) -> Entry:
    """A journal entry for a group message."""
    msg = Incoming("qq", group, "u1", "阿青", f"第{mid}句", message_id=mid, bot_id=bot, mentions_bot=True, **kw)  # type: ignore[arg-type]
    ids = {"self_id": bot, "message_type": "group", "group_id": group, "user_id": "u1", "message_id": mid, "time": "1"}
    return Entry(msg, Route("onebot", ids), at)


async def test_journal_holds_a_message_until_it_is_done(opener: Opener, wall: Wall) -> None:
    store = opener()
    first = received("m1", at=wall.now)
    await store.journal.alive("run-a", 60)
    assert await store.journal.enter(first, "run-a") == "new"
    assert await store.journal.enter(first, "run-a") == "mine"  # a redelivery to the run holding it
    assert await opener().journal.enter(first, "run-b") == "busy"  # another run, while run-a lives
    await store.journal.done([first.key], 3600)
    assert await store.journal.enter(first, "run-a") == "done"
    assert await opener().journal.enter(first, "run-b") == "done"
    assert (await store.journal.adopt("run-b", 0.0, 100, 3600)).entries == ()


async def test_journal_keys_by_bot_conversation_and_message(opener: Opener, wall: Wall) -> None:
    store = opener()
    # message ids are only unique within a conversation, and each bot account gets its own copy
    for entry in (received("42"), received("42", group="g2"), received("42", bot="10002")):
        assert await store.journal.enter(entry, "run-a") == "new"
    direct = Incoming("qq", "private", "u1", "阿青", "hi", message_id="42", bot_id="10001", is_direct=True)
    assert await store.journal.enter(Entry(direct, Route(), wall.now), "run-a") == "new"
    await store.journal.done([received("42").key], 3600)
    assert await store.journal.enter(received("42", group="g2"), "run-a") == "mine"


async def test_a_stopped_runs_messages_are_adopted_oldest_first_while_fresh(opener: Opener, wall: Wall) -> None:
    store = opener()
    t = wall.now
    old, older, newer = received("m1", at=t - 100), received("m2", at=t - 10), received("m3", at=t - 5)
    pic = Attachment("image", url="https://example.com/a.png", mime="image/png", size=3)
    fancy = received("m4", group="g2", at=t - 7, attachments=(pic,), reply_to_bot=True)
    await store.journal.alive("run-a", 60)
    for entry in (newer, old, fancy, older):
        assert await store.journal.enter(entry, "run-a") == "new"
    assert await store.journal.adopt("run-b", t - 60, 100, 3600) == Adopted()  # run-a is alive
    await store.journal.gone("run-a")
    await store.journal.alive("run-b", 60)
    adopted = await opener().journal.adopt("run-b", t - 60, 100, 3600)
    assert adopted.stale == 1
    assert [e.key for e in adopted.entries] == [older.key, fancy.key, newer.key]
    assert adopted.entries[1] == fancy  # everything needed to answer it again came back
    assert adopted.entries[1].incoming.conversation == fancy.incoming.conversation
    assert await store.journal.adopt("run-c", t - 60, 100, 3600) == Adopted()  # run-b holds them now
    assert await store.journal.enter(newer, "run-b") == "mine"
    assert await store.journal.enter(newer, "run-c") == "busy"
    assert await store.journal.enter(old, "run-c") == "done"  # too old: dropped, not answered late


async def test_a_run_that_stops_saying_it_is_alive_is_gone(opener: Opener, wall: Wall) -> None:
    store = opener()
    entry = received("m1", at=wall.now)
    await store.journal.alive("run-a", 10)
    assert await store.journal.enter(entry, "run-a") == "new"
    wall.now += 5
    assert await store.journal.adopt("run-b", 0.0, 100, 3600) == Adopted()
    wall.now += 6  # run-a crashed: it said nothing for 11 s
    assert [e.key for e in (await store.journal.adopt("run-b", 0.0, 100, 3600)).entries] == [entry.key]


async def test_a_released_message_is_adopted_again_and_adoption_is_bounded(opener: Opener, wall: Wall) -> None:
    store = opener()
    await store.journal.alive("run-a", 60)
    entries = [received(f"m{i}", at=wall.now + i) for i in range(5)]
    for entry in entries:
        await store.journal.enter(entry, "run-a")
    await store.journal.release(entries[0].key, "run-b")  # not its message: nothing happens
    assert await store.journal.adopt("run-b", 0.0, 100, 3600) == Adopted()
    await store.journal.release(entries[0].key, "run-a")
    assert [e.key for e in (await store.journal.adopt("run-b", 0.0, 100, 3600)).entries] == [entries[0].key]
    await store.journal.gone("run-a")
    await store.journal.gone("run-b")  # what it adopted is free again too
    await store.journal.alive("run-c", 60)
    batches = [[e.key for e in (await store.journal.adopt("run-c", 0.0, 2, 3600)).entries] for _ in range(4)]
    keys = [e.key for e in entries]
    assert batches == [keys[0:2], keys[2:4], keys[4:], []]


async def test_sessions_list_most_recent_first_with_totals(opener: Opener) -> None:
    store = opener()
    keys = [SessionKey("horo", "qq", "group", f"g{i}") for i in range(5)]
    for n, key in enumerate(keys):
        await store.append(key, [user(f"m{j}") for j in range(n + 1)])
    page = await store.sessions(0, 2)
    assert page.total == 5 and page.turns == 15
    assert [(i.key, i.turns) for i in page.items] == [(keys[4], 5), (keys[3], 4)]
    assert page.items[0].active >= page.items[1].active > 0
    rest = await store.sessions(4, 10)
    assert [i.key for i in rest.items] == [keys[0]]
    found = await store.sessions(0, 10, "g3")
    assert found.total == 1 and [i.key for i in found.items] == [keys[3]]
    assert (await store.sessions(0, 10, "*")).total == 0 and (await store.sessions(0, 10, "g[34]")).total == 0
    assert [i.key for i in (await store.sessions(1, 2, "qq:group")).items] == [keys[3], keys[2]]
    assert (await opener().sessions(0, 1)).items[0].key == keys[4]  # reopened: the same list


async def test_the_last_replies_contexts_are_kept_newest_first_and_reset_with_the_session(opener: Opener) -> None:
    store = opener()
    assert await store.last_context(KEY) is None and await store.contexts(KEY, 5) == []
    long = "长" * (CITED_CHARS + 50)
    for n in range(CONTEXTS_KEPT + 3):
        record = LastContext(float(n), "u1", "Alice", f"m{n}", "model", (Cited("passage", long, "book"),),
                             seq=2 * n + 2, tokens=(("system", 900), ("message", n)))
        await store.set_last_context(KEY, record)
    await store.set_last_context(OTHER, LastContext(1.0, message="other"))
    kept = await opener().contexts(KEY, 100)
    assert [c.message for c in kept] == [f"m{n}" for n in reversed(range(3, CONTEXTS_KEPT + 3))]
    assert kept[0].seq == 2 * (CONTEXTS_KEPT + 2) + 2 and kept[0].tokens == (("system", 900), ("message", CONTEXTS_KEPT + 2))
    assert len(kept[0].cited[0].text) == CITED_CHARS and kept[0].cited[0].text.endswith("…")
    assert (await store.last_context(KEY)) == kept[0]
    assert [c.message for c in await store.contexts(KEY, 2)] == [f"m{CONTEXTS_KEPT + 2}", f"m{CONTEXTS_KEPT + 1}"]
    await store.reset(KEY)
    assert await store.contexts(KEY, 5) == [] and await store.last_context(KEY) is None
    assert [c.message for c in await store.contexts(OTHER, 5)] == ["other"]
