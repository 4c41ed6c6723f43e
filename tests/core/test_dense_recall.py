"""Dense recall of older turns: embedded once in the background, fused with BM25, never in the way.

The embedder is always reached over HTTP on 127.0.0.1 speaking /v1/embeddings: llama.cpp's server
with SmolLM2 (the real-model tier, .venv-llm) for recall by meaning, and a small server of this file
whose vectors are word concepts (so a test can count its requests and stop it) for the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.app import App, Clocks
from core.background import Background
from core.config import ConfigError
from core.messages import Incoming
from memory.episodes import EpisodicMemory
from memory.knowledge.embedders import HttpEmbedder
from memory.recall_dense import CACHE_FILE, RETRY_SECONDS, DenseRecall, turn_text
from memory.recollections import Recollection
from memory.redis_store import RedisStore
from memory.turns import SessionKey, Turn
from memory.vector_cache import VectorCache
from tests.conftest import ROOT, MakeSettings
from tests.real_model.conftest import embedding_server  # noqa: F401 - the fixture, for these tests too
from tests.real_model.llama import LlamaServer
from tests.support.embeddings_server import EmbeddingsServer
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import replies

KEY = SessionKey("holo_en", "test", "group", "g1")
OTHER = SessionKey("holo_en", "test", "group", "g2")
T0 = 1_700_000_000.0
CHATTER = [
    "It's raining again and I forgot my umbrella", "What should I get for lunch today", "Anyone up for a hike this weekend",
    "Work has been brutal this week", "The train was packed this morning", "Has anyone seen the new sci-fi film",
    "They're digging up the road outside again", "My takeaway arrived half spilled", "Markets are down again, ugh",
    "Any good phone games to recommend", "Stayed up way too late watching a series", "The sunset tonight is gorgeous",
    "The office heating is broken", "My parcel is three days late", "A new noodle place opened near me",
    "Ran five kilometres today, legs are jelly", "Three hour meeting this afternoon", "Only two eggs left in the fridge",
    "Finally Friday", "Stuck in traffic for an hour", "Two for one coffee at the corner cafe", "The leaves are turning yellow",
    "Ordered a shirt online and it's the wrong size", "My laptop crashed and I lost my notes", "Not sleeping well lately",
    "Big cleaning day on Sunday", "This meme is killing me", "Did you see the news today", "Wrap up warm, it's cold out",
    "Picked up some fruit on the way home", "The electricity bill is high this month", "Saw a huge spider in the bathroom",
]
MEMBERS = [("e1", "Tom"), ("e2", "Anna"), ("e3", "Raj")]
CELLO = "I've started cello lessons, the Bach prelude is hard"  # no word in common with the question
QUESTION = "which instrument am I learning again?"

# the test server's model: words as concepts, so a paraphrase lands near what it paraphrases
CONCEPTS = {"cello": "instrument", "violin": "instrument", "guitar": "instrument", "instrument": "instrument",
            "lessons": "learn", "learning": "learn", "learn": "learn", "bach": "music", "prelude": "music"}


def concepts(text: str, dim: int = 256) -> list[float]:
    """A bag of hashed word concepts (words of four letters or more), plus a constant part every text shares."""
    vec = [0.0] * dim
    vec[0] = 1.0
    for word in re.findall(r"[a-z]{4,}", text.lower()):
        word = CONCEPTS.get(word, word)
        vec[1 + int(hashlib.md5(word.encode()).hexdigest(), 16) % (dim - 1)] += 1.0
    return vec


def concept_server(dim: int = 256) -> EmbeddingsServer:
    """An embeddings server whose vectors are word concepts (`concepts`), `server.dim` wide (a test may change it)."""
    server = EmbeddingsServer(lambda text: concepts(text, server.dim), dim)
    return server


@pytest.fixture
def stub() -> Iterator[EmbeddingsServer]:
    s = concept_server()
    yield s
    s.close()


def said(text: str, uid: str, name: str, at: float) -> Turn:
    return Turn("user", text, uid, name, addressed=False, at=at)


def chat(target: str | None = None, size: int = 60, at: int = 12) -> list[Turn]:
    """A group's chatter, with `target` said by Mei at position `at`."""
    turns = []
    for i in range(size):
        uid, name = MEMBERS[i % len(MEMBERS)]
        turns.append(said(CHATTER[i % 30], uid, name, T0 + 60 * i))  # every 30 turns the same again
        if target is not None and i == at:
            turns.append(said(target, "e4", "Mei", T0 + 60 * i + 30))
    return turns


class Memory:
    """A store on the real Redis, and episodic memories over it with or without dense recall."""

    def __init__(self, store: RedisStore, data: Path):
        self.store = store
        self.data = data
        self.background = Background()
        self.opened: list[DenseRecall] = []
        self.now = [0.0]

    def episodes(self, embedder: HttpEmbedder | None = None, wait: float = 5.0) -> EpisodicMemory:
        """A process's memory; with an embedder, dense recall over the vector file in `data`."""
        dense = None
        if embedder is not None:
            dense = DenseRecall(embedder, VectorCache(self.data / CACHE_FILE), self.background,
                                clock=lambda: self.now[0], wait=wait)
            self.opened.append(dense)
        return EpisodicMemory(self.store, keep_turns=500, dense=dense)

    async def recall(self, episodes: EpisodicMemory, message: str = QUESTION, key: SessionKey = KEY,
                     user_id: str = "e4") -> list[Recollection]:
        return await episodes.recall(key, message, [], visible=set(), now=T0 + 86400, language="en",
                                     user_id=user_id, ignore=["Holo"])

    async def primed(self, episodes: EpisodicMemory, key: SessionKey = KEY) -> None:
        """Index the conversation and wait for its turns to be embedded in the background."""
        await episodes.index(key)
        await self.background.drain()


@pytest.fixture
async def memory(tmp_path: Path, redis_url: str, redis_prefix: str) -> AsyncIterator[Memory]:
    store = RedisStore(redis_url, f"{redis_prefix}:v2", 4, archive_turns=500)
    mem = Memory(store, tmp_path / "data")
    yield mem
    await mem.background.aclose()
    for dense in mem.opened:
        await dense.close()
    await store.close()


def texts(found: list[Recollection]) -> list[str]:
    return [r.turn.text for r in found]


async def test_a_paraphrase_is_recalled_by_meaning_and_not_by_words(
    memory: Memory, embedding_server: LlamaServer  # noqa: F811
) -> None:
    await memory.store.append(KEY, chat(CELLO))
    assert CELLO not in texts(await memory.recall(memory.episodes()))  # BM25 alone: no word in common
    embedder = HttpEmbedder(embedding_server.base_url, "smollm2", timeout=60.0)
    episodes = memory.episodes(embedder)
    await memory.primed(episodes)
    assert episodes.dense is not None and episodes.dense.embedded(KEY) == len(chat(CELLO))
    found = await memory.recall(episodes)
    assert CELLO in texts(found), texts(found)
    # a question BM25 answers on its own keeps its answer at the top with dense on
    lexical = await memory.recall(episodes, "what's wrong with the office heating?", user_id="e1")
    assert texts(lexical)[0] == "The office heating is broken"


async def test_each_turn_is_embedded_once_and_kept_for_the_next_process(memory: Memory, stub: EmbeddingsServer) -> None:
    turns = chat(CELLO)
    await memory.store.append(KEY, turns)
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    await memory.primed(episodes)
    distinct = {turn_text(t) for t in turns}
    assert len(distinct) < len(turns)  # chatter repeats: the same words are embedded once
    assert sorted(stub.texts()) == sorted(distinct)
    asked = len(stub.inputs)
    assert CELLO in texts(await memory.recall(episodes))
    await memory.store.append(KEY, [said("My cat knocked a glass off the table", "e1", "Tom", T0 + 9000)])
    await memory.primed(episodes)
    assert stub.texts(asked) == [QUESTION, "Tom: My cat knocked a glass off the table"]
    # another process on the same data folder: every turn's vector comes from the file
    asked = len(stub.inputs)
    later = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    await memory.primed(later)
    assert later.dense is not None and later.dense.embedded(KEY) == len(turns) + 1
    assert stub.texts(asked) == []
    assert CELLO in texts(await memory.recall(later))
    assert stub.texts(asked) == [QUESTION]  # only the message itself


async def test_a_dead_embedder_leaves_recall_to_bm25_with_one_warning(
    memory: Memory, stub: EmbeddingsServer, caplog: pytest.LogCaptureFixture
) -> None:
    await memory.store.append(KEY, chat(CELLO))
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    await memory.primed(episodes)
    bm25 = memory.episodes()
    heating = "what's wrong with the office heating?"
    stub.status = 500
    with caplog.at_level(logging.WARNING, logger="memory"):
        for _ in range(3):
            assert texts(await memory.recall(episodes, heating, user_id="e1")) == \
                texts(await memory.recall(bm25, heating, user_id="e1"))
            assert CELLO not in texts(await memory.recall(episodes))
            await memory.store.append(KEY, [said("Anyone seen my keys", "e2", "Anna", T0 + 9000)])
            await memory.primed(episodes)  # new turns are not even tried while it is down
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "BM25 only" in warnings[0].getMessage() and "HTTP 500" in warnings[0].getMessage()
    asked = len(stub.inputs)
    await memory.recall(episodes)
    assert len(stub.inputs) == asked  # not asked again before RETRY_SECONDS
    stub.status = 200
    memory.now[0] += RETRY_SECONDS + 1
    await memory.primed(episodes)
    assert CELLO in texts(await memory.recall(episodes))
    # a server that is not there at all from the start: BM25, one more warning, no exception
    caplog.clear()
    nowhere = memory.episodes(HttpEmbedder("http://127.0.0.1:9/v1", "concepts"))
    with caplog.at_level(logging.WARNING, logger="memory"):
        await memory.primed(nowhere)
        assert texts(await memory.recall(nowhere, heating, user_id="e1")) == \
            texts(await memory.recall(bm25, heating, user_id="e1"))
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["memory"]


async def test_a_slow_embedder_does_not_hold_the_message(memory: Memory, stub: EmbeddingsServer) -> None:
    await memory.store.append(KEY, chat(CELLO))
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"), wait=0.2)
    await memory.primed(episodes)
    stub.delay = 1.5
    started = time.perf_counter()
    found = await memory.recall(episodes)
    assert time.perf_counter() - started < 1.0 and CELLO not in texts(found)  # BM25 answered alone
    stub.delay = 0.0


async def test_dense_recall_stays_in_its_conversation(memory: Memory, stub: EmbeddingsServer) -> None:
    await memory.store.append(OTHER, chat(CELLO))
    await memory.store.append(KEY, chat())
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    for key in (KEY, OTHER):
        await memory.primed(episodes, key)
    assert CELLO in texts(await memory.recall(episodes, key=OTHER))
    assert all(CELLO not in r.turn.text for r in await memory.recall(episodes, key=KEY))
    cache = VectorCache(memory.data / CACHE_FILE)
    embedder = HttpEmbedder(stub.url, "concepts")
    assert cache.count(embedder.key, str(KEY)) == len({turn_text(t) for t in chat()})
    assert cache.count(embedder.key, str(OTHER)) == len({turn_text(t) for t in chat(CELLO)})
    cache.close()
    embedder.close()


async def test_a_question_about_one_member_looks_by_meaning_among_their_turns(
    memory: Memory, stub: EmbeddingsServer
) -> None:
    # Raj talks of his violin lessons again and again, nearer the question's words than Mei's cello
    violin = [said(f"Violin lessons {i}, learning scales on the violin, violin practice", "e3", "Raj", T0 + 10_000 + 60 * i)
              for i in range(9)]
    await memory.store.append(KEY, chat(CELLO, size=300) + violin)
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    await memory.primed(episodes)
    found = texts(await memory.recall(episodes, "Which instrument is Mei learning?", user_id="e1"))
    assert CELLO in found, found
    assert any("Violin" in text for text in texts(await memory.recall(episodes, "Which instrument is Raj learning?",
                                                                     user_id="e1")))


async def test_a_reset_drops_the_conversations_vectors(memory: Memory, stub: EmbeddingsServer) -> None:
    await memory.store.append(KEY, chat(CELLO))
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    await memory.primed(episodes)
    await memory.store.reset(KEY)  # as another process would: the floor moves, the index is rebuilt
    await memory.store.append(KEY, chat(size=20))
    await memory.primed(episodes)
    assert CELLO not in texts(await memory.recall(episodes))
    cache = VectorCache(memory.data / CACHE_FILE)
    embedder = HttpEmbedder(stub.url, "concepts")
    assert cache.count(embedder.key, str(KEY)) == len({turn_text(t) for t in chat(size=20)})
    cache.close()
    embedder.close()


async def test_another_embedders_vectors_are_never_used(memory: Memory, stub: EmbeddingsServer) -> None:
    await memory.store.append(KEY, chat(CELLO))
    await memory.primed(memory.episodes(HttpEmbedder(stub.url, "model-a")))
    asked = len(stub.inputs)
    other = memory.episodes(HttpEmbedder(stub.url, "model-b"))
    await memory.primed(other)
    assert {m for m, _ in stub.inputs[asked:]} == {"model-b"}
    assert len(stub.inputs) - asked == len({turn_text(t) for t in chat(CELLO)})  # all embedded again
    # the same model name answering another size: its old vectors are dropped, not compared
    stub.dim = 128
    asked = len(stub.inputs)
    resized = memory.episodes(HttpEmbedder(stub.url, "model-b"))
    await memory.primed(resized)
    assert len(stub.inputs) == asked and resized.dense is not None  # from the file, still 256 wide
    assert CELLO not in texts(await memory.recall(resized))  # the message came back 128 wide: dense stays out
    assert resized.dense.embedded(KEY) == 0
    await memory.primed(resized)
    assert resized.dense.dim == 128 and resized.dense.embedded(KEY) == len(chat(CELLO))
    assert CELLO in texts(await memory.recall(resized))
    assert len(stub.inputs) - asked > len({turn_text(t) for t in chat(CELLO)})


def test_the_vector_file_keeps_one_size_per_embedder(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / CACHE_FILE)
    cache.claim("m-1", "m", 4)
    cache.save("m-1", "c", [(b"a" * 12, np.ones(4) / 2)])
    assert cache.load("m-1", "c")[b"a" * 12].tolist() == [0.5] * 4 and cache.load("m-1", "other") == {}
    cache.claim("m-1", "m", 4)
    assert cache.count("m-1", "c") == 1
    cache.claim("m-1", "m", 8)
    assert cache.load("m-1", "c") == {} and cache.dimension("m-1") == 8
    cache.save("m-1", "c", [(b"a" * 12, np.ones(8)), (b"b" * 12, np.ones(8))])
    assert cache.prune("m-1", "c", {b"b" * 12}) == 1 and list(cache.load("m-1", "c")) == [b"b" * 12]
    cache.close()


def incoming(text: str, uid: str, name: str, mid: int) -> Incoming:
    return Incoming("test", "g1", uid, name, text, message_id=str(mid), persona="holo_en")


async def test_the_app_recalls_by_meaning_with_an_embedder_configured(
    make_settings: MakeSettings, app_factory: Callable[..., Any], llm: FakeOpenAI, stub: EmbeddingsServer,
    redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:
    import tomli_w

    from bench.memory import HOLO_EN

    cards = tmp_path / "cards"
    (cards / "holo_en").mkdir(parents=True)
    (cards / "holo_en" / "card.toml").write_text(tomli_w.dumps(HOLO_EN), encoding="utf-8")
    memory = {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix, "max_turns": 20,
              "summary": False, "facts": False}
    knowledge = {"enabled": False, "embedding_url": stub.url, "embedding_model": "concepts"}
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, memory=memory,
                             knowledge=knowledge, personas={"dirs": [str(ROOT / "persona"), str(cards)]}, bot={"rate_limit_per_minute": 100_000})
    now = [T0]
    app: App = await app_factory(settings, clocks=Clocks(wall=lambda: now[0]))
    llm.default = Script(text="Hmm, let me think.")
    for i, turn in enumerate(chat(CELLO)):
        now[0] += 600
        await app.chain.handle(incoming(turn.text, turn.user_id, turn.name, i))
    await app.background.drain()
    assert f"Mei: {CELLO}" in stub.texts()  # what was overheard was embedded before anyone asked
    await app.chain.handle(incoming("Holo, are you there?", "e4", "Mei", 500))
    first = replies(llm.requests)[-1]["messages"][0]["content"]
    await app.chain.handle(incoming(f"Holo, {QUESTION}", "e4", "Mei", 501))
    body = replies(llm.requests)[-1]
    notes = [m["content"] for m in body["messages"] if m["role"] == "system"][1:]  # earlier notes stay in place
    assert f"Mei: {CELLO}" in notes[-2]  # the note just before the question (the reminder is last)
    assert body["messages"][0]["content"] == first  # the stable prefix is untouched
    assert (Path(settings.bot.data_dir) / CACHE_FILE).is_file()


async def test_recall_dense_follows_the_config(
    make_settings: MakeSettings, app_factory: Callable[..., Any], stub: EmbeddingsServer
) -> None:
    knowledge = {"enabled": False, "embedding_url": stub.url, "embedding_model": "concepts"}
    for setting, embedder, dense in (("auto", True, True), ("auto", False, False), (False, True, False)):
        settings = make_settings(memory={"recall_dense": setting}, knowledge=knowledge if embedder else {})
        app: App = await app_factory(settings)
        recall = next(s for s in app.chain.stages if hasattr(s, "episodes"))
        assert (recall.episodes.dense is not None) is dense, (setting, embedder)
    with pytest.raises(ConfigError, match=r"\[memory\] recall_dense = true needs an embedder.*embedding_url"):
        await app_factory(make_settings(memory={"recall_dense": True}, knowledge={"enabled": False}))
    with pytest.raises(ConfigError, match=r"\[memory\] recall_dense: must be \"auto\", true or false \(got 'maybe'\)"):
        make_settings(memory={"recall_dense": "maybe"})


async def test_knowledge_and_memory_share_one_embedder(
    make_settings: MakeSettings, app_factory: Callable[..., Any], stub: EmbeddingsServer
) -> None:
    knowledge = {"enabled": True, "embedding_url": stub.url, "embedding_model": "concepts"}
    app: App = await app_factory(make_settings(knowledge=knowledge))
    recall = next(s for s in app.chain.stages if hasattr(s, "episodes"))
    assert recall.episodes.dense is not None
    assert recall.episodes.dense.embedder is app.knowledge.embedder  # one model, one pool
    assert not recall.episodes.dense.owns_embedder


async def test_a_message_is_embedded_before_the_backlog_of_turns(memory: Memory, stub: EmbeddingsServer) -> None:
    backlog = [said(f"{CHATTER[i % 30]}, take {i}", *MEMBERS[i % 3], T0 + 60 * i) for i in range(320)]
    await memory.store.append(KEY, backlog)
    episodes = memory.episodes(HttpEmbedder(stub.url, "concepts"))
    stub.delay = 0.05  # a slow embedder: the backlog takes a while
    await episodes.index(KEY)  # the turns are embedded in the background, a batch at a time
    while episodes.dense is None or episodes.dense.embedded(KEY) < 16:
        await asyncio.sleep(0.01)
    await memory.recall(episodes)
    mine = next(i for i, (payload, _) in enumerate(stub.requests) if QUESTION in payload["input"])
    start, end = stub.spans[mine]
    assert not any(start < began < end for began, _ in stub.spans[:mine] + stub.spans[mine + 1 :])  # no batch began meanwhile
    assert episodes.dense.embedded(KEY) < len(backlog)  # the rest of the backlog waited for it
    stub.delay = 0.0
    await memory.background.drain()
    assert episodes.dense.embedded(KEY) == len(backlog)


async def test_the_embedding_backlog_is_a_metric(
    make_settings: MakeSettings, app_factory: Callable[..., Any], stub: EmbeddingsServer, redis_url: str, redis_prefix: str,
) -> None:
    from tests.core.test_metrics import scrape
    from tests.support.ports import free_port

    port = free_port()
    memory = {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix, "summary": False, "facts": False}
    settings = make_settings(memory=memory, metrics={"enabled": True, "port": port},
                             knowledge={"enabled": False, "embedding_url": stub.url, "embedding_model": "concepts"})
    app: App = await app_factory(settings)
    stub.delay = 0.2  # a slow embedder: a backlog builds
    for i, turn in enumerate(chat(size=40)):
        await app.chain.handle(Incoming("test", "g1", turn.user_id, turn.name, turn.text, message_id=str(i)))
    assert app.episodes is not None
    await app.episodes.index(SessionKey("horo", "test", "group", "g1"))
    assert scrape(port)["bot_memory_turns_unembedded"] > 0
    await app.background.drain()
    assert scrape(port)["bot_memory_turns_unembedded"] == 0
