"""The knowledge base the recall stage asks: passages, lore, scenes, and the spoiler limit."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import KnowledgeConfig
from core.knowledge import Lookup
from memory.knowledge.base import KnowledgeBase
from memory.knowledge.catalog import StoredChunk
from memory.knowledge.chapters import Section
from memory.knowledge.embedders import HttpEmbedder, LocalEmbedder
from memory.knowledge.embedding import MINILM, Embedder
from memory.knowledge.index import Layout
from memory.knowledge.ingest import Ingestor
from memory.knowledge.retrieval import WEAK_DENSE_WEIGHT, Found, dense_weight, drop_near_duplicates, rrf
from memory.knowledge.scenes import find_scenes
from memory.knowledge.vectors import open_client
from persona.card import Persona
from persona.library import PersonaLibrary
from tests.conftest import ROOT
from tests.knowledge.conftest import WUKONG_NAMES
from tests.knowledge.test_ingest import STORY, story


def wukong() -> Persona:
    return PersonaLibrary([ROOT / "persona"]).get("wukong")


def ingest(root: Path, paths: list[Path], embedder: Embedder | None = None) -> None:
    layout = Layout(root, "wukong")
    client = open_client("", layout.chroma) if embedder else None
    Ingestor(layout, WUKONG_NAMES, 300, 40, "", "bigram", embedder,
             (lambda: client) if client else None, progress=False).run(paths)
    if client is not None:
        client.close()


async def test_lore_only_without_an_index(tmp_path: Path) -> None:
    kb = KnowledgeBase(KnowledgeConfig(), tmp_path / "kb")
    found = await kb.lookup(wukong(), "你的金箍棒有多重", [], None)
    assert found.passages == () and found.scenes == ()
    assert any("一万三千五百斤" in p.text for p in found.lore)
    assert kb.embedder is None and kb.mode == "bm25"  # no embedder configured: BM25 carries retrieval
    await kb.close()


async def test_the_question_is_searched_once_and_its_passages_reach_the_lookup(
    tmp_path: Path, novel: Callable[..., Path]
) -> None:
    """Recall searches the question while the store is read, then hands the passages to the lookup."""
    ingest(tmp_path / "kb", [novel(1, 7)])
    kb = KnowledgeBase(KnowledgeConfig(mode="bm25", top_k=3), tmp_path / "kb")
    query = "悟空在八卦炉里炼了多久？"
    passages = await kb.search(wukong(), query, None)
    assert passages == (await kb.lookup(wukong(), query, [], None)).passages
    assert passages and "八卦炉" in passages[0].text
    assert all("第七回" not in p.source for p in await kb.search(wukong(), query, 5))  # the spoiler limit holds
    searched = 0
    search = kb.retriever.search

    def counted(*args: Any, **kwargs: Any) -> list[Found]:
        nonlocal searched
        searched += 1
        return search(*args, **kwargs)

    kb.retriever.search = counted  # type: ignore[method-assign]
    given = await kb.lookup(wukong(), query, ["弼马温 官"], None, passages[:1])
    assert searched == 0 and given.passages == passages[:1]  # not searched again
    assert given.scenes == (await kb.lookup(wukong(), query, ["弼马温 官"], None)).scenes and searched == 1
    assert await KnowledgeBase(KnowledgeConfig(), tmp_path / "empty").search(wukong(), query, None) == ()
    await kb.close()


async def test_bm25_passages_scenes_and_spoiler_limit(tmp_path: Path, novel: Callable[..., Path]) -> None:
    ingest(tmp_path / "kb", [novel(1, 7)])
    kb = KnowledgeBase(KnowledgeConfig(mode="bm25", top_k=3), tmp_path / "kb")
    query = "悟空在八卦炉里炼了多久？"
    found = await kb.lookup(wukong(), query, [], None)
    assert found.passages and "八卦炉" in found.passages[0].text
    assert found.passages[0].source.startswith("xiyou 第七回")
    assert found.passages[0].text.startswith("〔第七回")
    limited = await kb.lookup(wukong(), query, [], 5)
    assert limited.passages and all("第六回" not in p.source and "第七回" not in p.source for p in limited.passages)
    scenes = (await kb.lookup(wukong(), "弼马温 官", [], None)).scenes
    assert scenes and all(s.kind == "scene" and s.text.startswith("孙悟空:「") and s.text.endswith("」") for s in scenes)
    # a query whose scenes reach past chapter 5 without a limit, and stop at 5 with one
    def chapters(found: Lookup) -> set[int]:
        return {int(re.search(r"\d+", s.source).group()) for s in found.scenes}  # type: ignore[union-attr]

    for ask in ("如来 佛祖", "天王 玉帝 大圣", "老君 八卦炉", "二郎 真君", "猴王 妖猴"):
        if max(chapters(await kb.lookup(wukong(), ask, [], None)), default=0) > 5:
            break
    else:
        raise AssertionError("no query reaches scenes past chapter 5")
    limited_scenes = await kb.lookup(wukong(), ask, [], 5)
    assert limited_scenes.scenes and max(chapters(limited_scenes)) <= 5
    await kb.close()


async def test_dense_spoiler_limit_and_reload_after_ingest(tmp_path: Path, embedder: Embedder) -> None:
    root = tmp_path / "kb"
    ingest(root, [story(tmp_path)], embedder)
    kb = KnowledgeBase(KnowledgeConfig(mode="dense", top_k=1), root, embedder)
    # MiniLM finds a paraphrase; the small chat model behind the test server finds only its own words
    query = "Which fruit did he steal from the gods?" if embedder.is_default else STORY[3]
    top = (await kb.lookup(wukong(), query, [], None)).passages
    assert top and "peaches" in top[0].text
    limited = (await kb.lookup(wukong(), query, [], 2)).passages
    assert limited and "peaches" not in limited[0].text
    # a new ingest (another process, in real use) is picked up without a restart
    ingest(root, [story(tmp_path), story(tmp_path, STORY_MORE, "more.txt")], embedder)
    query = "Who did the monkey meet under the mountain?" if embedder.is_default else STORY_MORE[4]
    top = (await kb.lookup(wukong(), query, [], None)).passages
    assert "Tang monk" in top[0].text
    await kb.close()


STORY_MORE = {4: "Under the Five Elements Mountain the monkey met the Tang monk, who freed him."}


def test_weighted_rrf() -> None:
    assert [i for i, _ in rrf([([1, 2, 3], 1.0), ([2], 1.0)], 60)] == [2, 1, 3]
    # a lightly weighted dense list cannot reorder the lexical top, only add below it
    fused = [i for i, _ in rrf([([1, 2, 3, 4], 1.0), ([9, 4, 3], 0.05)], 10)]
    assert fused[:4] == [1, 2, 3, 4] and 9 in fused
    assert [i for i, _ in rrf([([1], 1.0), ([9], 0.0)], 10)] == [1]
    minilm = LocalEmbedder(MINILM)  # nothing loads until it embeds
    assert dense_weight("auto", minilm, "悟空是谁") == WEAK_DENSE_WEIGHT
    assert dense_weight("auto", minilm, "who is the monkey") == 1.0
    assert dense_weight("auto", LocalEmbedder("/models/bge-small-zh-v1.5"), "悟空是谁") == 1.0
    server = HttpEmbedder("http://127.0.0.1:9/v1", "bge-m3")
    assert dense_weight("auto", server, "悟空是谁") == 1.0
    server.close()
    assert dense_weight(0.3, minilm, "悟空是谁") == 0.3
    assert dense_weight("auto", None, "悟空是谁") == 1.0  # no embedder: the dense list is empty anyway


def test_near_duplicates_are_dropped() -> None:
    def found(cid: str, text: str) -> Found:
        return Found(StoredChunk(cid, "s", 1, "", text, ""), 1.0)

    base = "花果山水帘洞美猴王齐天大圣孙悟空保唐僧西天取经一路降妖除魔" * 3
    items = [found("a", base), found("b", base[3:] + "。"), found("c", "猪八戒高老庄招亲吃西瓜睡大觉" * 4), found("d", "短"), found("e", "短")]
    assert [f.chunk.id for f in drop_near_duplicates(items, 10)] == ["a", "c", "d"]


def test_scene_lines_are_the_characters_own() -> None:
    text = "行者笑道：“师父放心，有老孙在此！”八戒对行者道：“猴哥，俺饿了。”大圣闻言道：“呆子休要聒噪。”唐僧道：“悟空，莫要顽皮。”"
    lines = [s.line for s in find_scenes([Section(9, "第九回", text, 0)], "x", WUKONG_NAMES)]
    assert lines == ["师父放心，有老孙在此！", "呆子休要聒噪。"]


async def test_open_knowledge_and_doctor_check(make_settings: Any, novel: Callable[..., Path]) -> None:
    from core.knowledge import NoKnowledge
    from memory.knowledge import knowledge_check, open_knowledge

    assert isinstance(await open_knowledge(make_settings()), NoKnowledge)
    assert await knowledge_check(make_settings()) == (True, "disabled", "")
    settings = make_settings(knowledge={"enabled": True, "max_chapter": {"discord:42": 7}})
    kb = await open_knowledge(settings)
    assert isinstance(kb, KnowledgeBase) and kb.embedder is None and kb.mode == "bm25"
    ok, detail, fix = await knowledge_check(settings)
    assert ok and "no source ingested" in detail and "ingest" in fix
    # doctor says how to add dense retrieval
    assert "BM25 only (no embedder configured)" in detail and "embedding_url" in fix and "embedding_path" in fix
    ingest(settings.bot.data_dir / "knowledge", [novel(1, 2)])
    ok, detail, _ = await knowledge_check(settings)
    assert ok and "wukong (1 files" in detail
    bad = make_settings(knowledge={"enabled": True, "embedding_path": "/nowhere/model"})
    assert (await knowledge_check(bad))[0] is False
    dense_alone = make_settings(knowledge={"enabled": True, "mode": "dense"})
    ok, detail, fix = await knowledge_check(dense_alone)
    assert not ok and "no embedder" in detail and "embedding_url" in fix
    await kb.close()


async def test_a_broken_index_still_gives_lore(tmp_path: Path, novel: Callable[..., Path]) -> None:
    root = tmp_path / "kb"
    ingest(root, [novel(1, 1)])
    (root / "wukong" / "bm25" / "meta.json").write_text("{}", encoding="utf-8")
    (root / "wukong" / "catalog.sqlite3").write_bytes(b"not a database at all" * 100)
    kb = KnowledgeBase(KnowledgeConfig(mode="bm25"), root)
    found = await kb.lookup(wukong(), "金箍棒", [], None)
    assert found.passages == () and found.lore
    await kb.close()
