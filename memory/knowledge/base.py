"""The knowledge base the bot asks: lorebook always, source passages and scenes once ingested."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.config import KnowledgeConfig
from core.knowledge import Lookup, Passage, pack
from memory.knowledge.embedders import open_embedder
from memory.knowledge.embedding import Embedder
from memory.knowledge.index import Layout, SourceIndex
from memory.knowledge.lorebook import scan
from memory.knowledge.retrieval import Found, Mode, Reranker, Retriever, dense_weight
from memory.knowledge.vectors import Vectors, collection_name, open_client
from persona.card import Persona

log = logging.getLogger(__name__)
DENSE_RETRY_SECONDS = 30.0  # after the embedder fails, lookups use BM25 alone this long


class KnowledgeBase:
    """Per-persona indexes, loaded on first use and reloaded when an ingest finishes."""

    def __init__(
        self, cfg: KnowledgeConfig, root: Path, embedder: Embedder | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.root = root
        self._owns_embedder = embedder is None
        self.embedder = None if cfg.mode == "bm25" else embedder or open_embedder(cfg)
        # with no embedder configured BM25 carries retrieval, whatever the mode says (doctor tells)
        self.mode: Mode = cfg.mode if self.embedder is not None else "bm25"
        self._clock = clock
        self._dense_down_until = 0.0
        reranker = Reranker(cfg.reranker_model) if cfg.reranker_model else None
        self.retriever = Retriever(self.embedder, cfg.dense_weight, cfg.rrf_k, reranker)
        self._indexes: dict[str, tuple[float | None, SourceIndex | None]] = {}
        self._vectors: dict[str, Vectors] = {}
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._open_lock = threading.Lock()

    async def search(self, persona: Persona, query: str, max_chapter: int | None) -> tuple[Passage, ...]:
        """The source passages for a question (none before an ingest, or from a broken index). BM25 alone
        runs here, on the loop (a thread's hop and its fight for the GIL cost more than the search); an
        embedder or a reranker is waited for in a thread."""
        try:
            index = await self.index(persona.id)
            if index is None or not index.chunks:
                return ()
            mode, dense = self._mode(query)
            if not dense and self.retriever.reranker is None:
                return tuple(self._passages(persona.id, index, query, max_chapter, mode, dense))
            return tuple(await asyncio.to_thread(self._passages, persona.id, index, query, max_chapter, mode, dense))
        except Exception as exc:  # a broken index must not silence the character
            log.warning("knowledge search for %s failed: %s", persona.id, exc)
            return ()

    async def lookup(
        self, persona: Persona, query: str, recent: Sequence[str], max_chapter: int | None,
        passages: tuple[Passage, ...] | None = None,
    ) -> Lookup:
        """Lore from the card; passages (unless `search` found them already) and scenes from the ingested
        source, within the limit."""
        lore = scan(persona.card.lorebook, query, recent, self.cfg.scan_depth, self.cfg.lore_tokens, max_chapter)
        try:
            index = await self.index(persona.id)
            if index is None or not index.chunks:
                return Lookup(lore=tuple(lore))
            # scenes follow the conversation (the last message too), passages the question
            talk = "\n".join([*list(recent)[-1:], query])
            if passages is None:
                passages = await self.search(persona, query, max_chapter)
            scenes = self._scenes(persona, index, talk, max_chapter)  # BM25 over the lines alone: on the loop
        except Exception as exc:  # a broken index must not silence the character: lore still works
            log.warning("knowledge lookup for %s failed: %s", persona.id, exc)
            return Lookup(passages or (), tuple(lore))
        return Lookup(passages, tuple(lore), tuple(scenes))

    async def index(self, persona_id: str) -> SourceIndex | None:
        """The persona's index, (re)loaded in a thread when the saved one changed."""
        layout = Layout(self.root, persona_id)
        marker = _mtime(layout.lexical / "meta.json") or _mtime(layout.catalog)
        cached = self._indexes.get(persona_id)
        if cached is not None and cached[0] == marker:
            return cached[1]
        async with self._lock:
            cached = self._indexes.get(persona_id)
            if cached is not None and cached[0] == marker:
                return cached[1]
            index = await asyncio.to_thread(SourceIndex.load, layout, self.cfg.tokenizer) if marker else None
            self._indexes[persona_id] = (marker, index)
            return index

    def _mode(self, query: str) -> tuple[Mode, bool]:
        """The retrieval mode now (BM25 while the embedder is down) and whether dense search takes part."""
        mode = self.mode if self._clock() >= self._dense_down_until else "bm25"
        dense = mode == "dense" or (mode == "hybrid" and dense_weight(self.cfg.dense_weight, self.embedder, query) > 0)
        return mode, dense and self.embedder is not None

    def _passages(self, persona_id: str, index: SourceIndex, query: str, max_chapter: int | None, mode: Mode,
                  dense: bool) -> list[Passage]:
        vectors = self._vectors_for(persona_id) if dense else None
        try:
            found = self.retriever.search(index, vectors, query, self.cfg.top_k, max_chapter, mode)
        except Exception as exc:  # a vector store or embedding server that went away must not silence the character
            self._dense_down_until = self._clock() + DENSE_RETRY_SECONDS
            log.warning("dense retrieval failed, using BM25 only for %.0f s: %s", DENSE_RETRY_SECONDS, exc)
            found = self.retriever.search(index, None, query, self.cfg.top_k, max_chapter, "bm25")
        return pack([as_passage(f) for f in found], self.cfg.passage_tokens)

    def _scenes(self, persona: Persona, index: SourceIndex, query: str, max_chapter: int | None) -> list[Passage]:
        k = self.cfg.scenes_k
        if k <= 0 or not index.scenes:
            return []
        out: list[Passage] = []
        seen: set[str] = set()
        for i, score in index.scene_lexical.search(query, k * 3, max_chapter):
            scene = index.scenes[i]
            if scene.line in seen:
                continue
            seen.add(scene.line)
            out.append(Passage(f"{persona.name}:「{scene.line}」", f"第{scene.chapter}回", "scene", score))
            if len(out) >= k:
                break
        return out

    def _vectors_for(self, persona_id: str) -> Vectors | None:
        assert self.embedder is not None
        with self._open_lock:  # lookups of several channels run in threads at once
            return self._open_vectors(persona_id)

    def _open_vectors(self, persona_id: str) -> Vectors | None:
        assert self.embedder is not None
        if persona_id not in self._vectors:
            if self._client is None:
                if not self.cfg.chroma_url and not Layout(self.root, persona_id).chroma.exists():
                    return None  # nothing was ever embedded here: BM25 alone, no model load
                self._client = open_client(self.cfg.chroma_url, Layout(self.root, persona_id).chroma)
            name = collection_name(persona_id, self.embedder.key)
            self._vectors[persona_id] = Vectors(self._client, name, self.embedder.name)
        return self._vectors[persona_id]

    async def close(self) -> None:
        """Release the Chroma client and the embedder's connections."""
        client, self._client = self._client, None
        self._vectors.clear()
        closer = getattr(client, "close", None)
        if callable(closer):
            closer()
        if self.embedder is not None and self._owns_embedder:
            self.embedder.close()


def as_passage(found: Found) -> Passage:
    """A retrieved chunk as the prompt shows it: the chapter heading, then the text."""
    c = found.chunk
    head = f"〔{c.title}〕" if c.title else ""
    source = " ".join(p for p in (c.name, c.title) if p)
    return Passage(f"{head}{c.text}", source, "source", found.score)


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None
