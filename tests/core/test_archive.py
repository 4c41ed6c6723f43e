"""Episodic recall: turns past the window are archived (bounded), indexed and recalled per conversation."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, Clocks
from core.messages import Incoming
from core.text import estimate_tokens
from memory.age import day_of
from memory.episode_index import EpisodeIndex
from memory.episodes import EpisodicMemory
from memory.recollections import render
from memory.redis_store import RedisStore
from memory.sqlite_store import SQLiteStore
from memory.store import ConversationStore
from memory.terms import query_weights
from memory.turns import SessionKey, Turn
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import replies

KEY = SessionKey("horo", "test", "group", "g1")
OTHER = SessionKey("horo", "test", "group", "g2")
T0 = 1_700_000_000.0
DAY = 86400.0

Opener = Callable[..., ConversationStore]


@pytest.fixture(params=["redis", "sqlite"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str) -> AsyncIterator[Opener]:
    """Opens a store of the backend under test with a small window and archive and a settable clock."""
    opened: list[ConversationStore] = []

    def make(max_turns: int = 4, archive_turns: int = 6, archive_days: float = 0.0, now: list[float] | None = None) -> ConversationStore:
        clock = (lambda: now[0]) if now else time.time
        store: ConversationStore
        if request.param == "redis":
            store = RedisStore(redis_url, f"{redis_prefix}:v2", max_turns, archive_turns=archive_turns,
                               archive_days=archive_days, wall=clock)
        else:
            store = SQLiteStore(tmp_path / "m.sqlite3", max_turns, clock=clock, archive_turns=archive_turns,
                                archive_days=archive_days)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def said(text: str, at: float = T0, uid: str = "u1", name: str = "阿青") -> Turn:
    return Turn("user", text, uid, name, addressed=False, at=at)


async def test_turns_past_the_window_are_archived_not_deleted(opener: Opener) -> None:
    store = opener(max_turns=4, archive_turns=6)
    for i in range(8):
        await store.append(KEY, [said(f"m{i}")])
    assert [t.text for t in await store.recent(KEY, 100)] == ["m4", "m5", "m6", "m7"]
    span = await store.turns_since(KEY, 0)
    assert span is not None and (span.floor, span.last) == (0, 8)
    assert [t.text for t in span.turns] == [f"m{i}" for i in range(8)]
    assert [t.seq for t in span.turns] == list(range(1, 9))
    later = await store.turns_since(KEY, 6)
    assert later is not None and [t.text for t in later.turns] == ["m6", "m7"]
    for i in range(8, 14):
        await store.append(KEY, [said(f"m{i}")])
    span = await store.turns_since(KEY, 0)
    # the archive is bounded: 6 archived + 4 in the window
    assert span is not None and [t.text for t in span.turns] == [f"m{i}" for i in range(4, 14)]
    assert await store.turns_since(OTHER, 0) in (None,) or (await store.turns_since(OTHER, 0)).turns == ()  # type: ignore[union-attr]


async def test_archive_retention_drops_old_turns(opener: Opener) -> None:
    now = [T0]
    store = opener(max_turns=2, archive_turns=100, archive_days=3, now=now)
    for i in range(6):
        now[0] = T0 + i * DAY
        await store.append(KEY, [said(f"day{i}", at=T0 + i * DAY)])
    span = await store.turns_since(KEY, 0)
    # day 5 now: day0 and day1 are older than 3 days and were archived: gone; the window keeps its own
    assert span is not None and [t.text for t in span.turns] == ["day2", "day3", "day4", "day5"]


async def test_reset_forgets_the_archive_and_moves_the_floor(opener: Opener) -> None:
    store = opener(max_turns=2, archive_turns=10)
    for i in range(5):
        await store.append(KEY, [said(f"m{i}")])
    await store.reset(KEY)
    span = await store.turns_since(KEY, 0)
    assert span is not None and span.turns == () and span.floor == 5
    await store.append(KEY, [said("after")])
    span = await store.turns_since(KEY, 0)
    assert span is not None and [(t.text, t.seq) for t in span.turns] == [("after", 6)]


async def test_a_reset_in_another_process_reaches_every_index(opener: Opener) -> None:
    mine, theirs = opener(max_turns=3, archive_turns=50), opener(max_turns=3, archive_turns=50)
    episodes = EpisodicMemory(mine, keep_turns=53)
    await mine.append(KEY, [said("我家的猫叫团子"), said("今天下雨了", uid="u2", name="小红")])
    for i in range(6):
        await mine.append(KEY, [said(f"闲聊第{i}句", uid="u3", name="路人")])
    found = await episodes.recall(KEY, "猫叫什么", [], visible=set(), now=T0 + 60, language="zh")
    assert found and found[0].turn.text == "我家的猫叫团子"
    await theirs.reset(KEY)
    assert await episodes.recall(KEY, "猫叫什么", [], visible=set(), now=T0 + 60, language="zh") == []


async def test_recall_is_strictly_per_conversation(opener: Opener) -> None:
    store = opener(max_turns=3, archive_turns=50)
    episodes = EpisodicMemory(store, keep_turns=53)
    await store.append(OTHER, [said("我家的猫叫团子")])
    for i in range(5):
        await store.append(KEY, [said(f"闲聊第{i}句，猫")])
    found = await episodes.recall(KEY, "我家的猫叫什么", [], visible=set(), now=T0, language="zh")
    assert all(r.turn.text != "我家的猫叫团子" for r in found)
    other = await episodes.recall(OTHER, "我家的猫叫什么", [], visible=set(), now=T0, language="zh")
    assert [r.turn.text for r in other] == ["我家的猫叫团子"]


def test_index_ranks_the_relevant_turn_with_its_neighbours_and_age() -> None:
    idx = EpisodeIndex()
    turns = [
        Turn("user", "明天要下雨吗", "u2", "小红", False, T0, seq=1),
        Turn("user", "我下个月要去杭州看西湖", "u1", "阿青", False, T0 + 10, seq=2),
        Turn("assistant", "杭州好啊，记得带伞。", "", "赫萝", True, T0 + 20, seq=3),
        Turn("user", "The train to Paris leaves at nine", "u3", "Tom", False, T0 + 30, seq=4),
    ]
    idx.add(turns)
    idx.add(turns[:2])  # already indexed: ignored
    assert len(idx) == 4
    hits = idx.search(query_weights("阿青要去哪里玩？杭州？", []), 3, lambda t: False)
    assert hits[0][2].seq == 2
    hits = idx.search(query_weights("when does Tom's train leave", []), 3, lambda t: False)
    assert hits[0][2].seq == 4
    assert idx.around(2) == (turns[0], turns[2])


def test_render_fits_the_budget_and_never_repeats_the_window() -> None:
    idx = EpisodeIndex()
    turns = [Turn("user", f"第{i}句话，说到了苹果和酒" * 3, "u1", "阿青", False, T0 + i, seq=i) for i in range(1, 30)]
    idx.add(turns)
    from memory.recollections import Recollection

    recs = [Recollection(t, *idx.around(t.seq), "三天前", 5.0) for t in turns[::3]]
    text, kept = render(recs, 120, estimate_tokens, "赫萝", "zh", hidden={4})
    assert estimate_tokens(text) <= 120 + 8 * len(kept)
    assert kept and f"[{day_of(T0 + 1, 'zh')}，三天前]" in text and "阿青：" in text  # dated, with who said it
    assert "第4句话" not in text  # a window turn is never repeated
    assert [r.turn.seq for r in kept] == sorted(r.turn.seq for r in kept)


async def test_recall_latency_at_ten_thousand_turns(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(redis_url, f"{redis_prefix}:v2", 200, archive_turns=10_000)
    rng = random.Random(7)
    words = ["苹果", "麦子", "下雨", "股市", "火车", "杭州", "北京", "猫", "狗", "考试", "加班", "电影", "火锅", "the", "game", "train"]
    try:
        for batch in range(100):
            turns = [said("，".join(rng.sample(words, 4)) + f"{batch}-{i}", at=T0 + batch * 100 + i) for i in range(100)]
            await store.append(KEY, turns)
        episodes = EpisodicMemory(store, keep_turns=10_200)
        await episodes.recall(KEY, "warm up", [], visible=set(), now=T0, language="zh")
        times = []
        for i in range(60):
            await store.append(KEY, [said(f"新消息{i}：火车和猫")])
            started = time.perf_counter()
            await episodes.recall(KEY, "还记得杭州的火锅吗", ["今天下雨", "加班好累"], visible=set(), now=T0, language="zh")
            times.append(time.perf_counter() - started)
        times.sort()
        assert len((await episodes.index(KEY)) or []) == 10_060
        assert times[len(times) // 2] < 0.020, times  # the bench measures p99 on a quiet machine
    finally:
        await store.close()


def group(text: str, uid: str, name: str, mid: int, channel: str = "g1") -> Incoming:
    return Incoming("test", channel, uid, name, text, message_id=str(mid))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_message_from_hundreds_of_turns_ago_reaches_the_prompt(
    backend: str, make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    memory: dict[str, Any] = {"backend": backend, "max_turns": 50, "summary": False, "facts": False}
    if backend == "redis":
        memory |= {"redis_url": redis_url, "key_prefix": redis_prefix}
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, memory=memory,
                             bot={"rate_limit_per_minute": 100_000})
    now = [T0]
    app: App = await app_factory(settings, clocks=Clocks(wall=lambda: now[0]))
    llm.default = Script(text="呵呵，咱记着呢。")
    # the test server counts a character as a token: an English message first settles the calibration
    llm.push(Script(text="Hello, Tom."))  # (answered in English: a Chinese reply to it would be the wrong language)
    await app.chain.handle(group("Horo, hello there, how are you doing today? " * 3, "u8", "Tom", 0))
    await app.chain.handle(group("我家的猫叫团子，特别黏人", "u1", "阿青", 1))
    await app.chain.handle(group("我家的猫叫团子，特别黏人", "u9", "别的群", 2, channel="g2"))
    chatter = ["今天股市又跌了", "午饭吃什么好呢", "周末去爬山吗", "新出的电影不错", "楼下在修路好吵"]
    for i in range(300):
        now[0] += 1200
        await app.chain.handle(group(f"{chatter[i % 5]}（{i}）", f"u{i % 4 + 2}", f"路人{i % 4}", 10 + i))
    first_stable = None
    for text in ("赫萝，你还记得我家猫叫什么吗？", "赫萝，早上好"):
        await app.chain.handle(group(text, "u1", "阿青", 999 if first_stable is None else 1000))
        body = replies(llm.requests)[-1]
        if first_stable is None:
            first_stable = body["messages"][0]["content"]
            volatile = [m["content"] for m in body["messages"] if m["role"] == "system"][1]
            assert "【你记得的往事】" in volatile and "阿青：我家的猫叫团子，特别黏人" in volatile
            assert "，四天前]" in volatile  # dated; 300 x 20 minutes ago, in the persona's language
            assert volatile.count("我家的猫叫团子") == 1  # the other group's copy never comes here
        else:
            assert body["messages"][0]["content"] == first_stable  # the stable prefix is untouched
    assert len(replies(llm.requests)) == 3


async def test_recall_goes_quiet_while_the_store_is_away() -> None:
    from memory.resilient import ResilientStore
    from memory.store import StoreError
    from memory.turns import LastContext

    store = ResilientStore(RedisStore("redis://127.0.0.1:1/0", retry_seconds=0), grace=0.1, probe_every=0.05)
    try:
        episodes = EpisodicMemory(store, keep_turns=100)
        assert await store.turns_since(KEY, 0) is None
        assert await episodes.recall(KEY, "猫叫什么", [], visible=set(), now=T0, language="zh") == []
        await store.set_last_context(KEY, LastContext(T0))  # not kept, never an error
        assert await store.last_context(KEY) is None
        assert (await store.fact_book("horo", "test", "u1")).facts == ()
        with pytest.raises(StoreError):
            await store.change_facts("horo", "test", "u1", lambda book: book)
    finally:
        await store.close()
