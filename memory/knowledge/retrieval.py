"""Retrieval: BM25 and dense results fused by weighted reciprocal rank, reranked, de-duplicated."""

from __future__ import annotations

import re
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from memory.knowledge.catalog import StoredChunk
from memory.knowledge.embedding import Embedder
from memory.knowledge.index import SourceIndex
from memory.knowledge.vectors import Vectors

Mode = Literal["bm25", "dense", "hybrid"]
# MiniLM barely separates Chinese passages (CMRC recall@5 0.24 alone). Fused at weight 0.05 it
# changed nothing in recall@1-10 on CMRC and the 西游记 set, yet cost ~60 ms a query on 2 busy
# cores; so in auto mode it is not asked for CJK queries. A configured model gets full weight.
WEAK_DENSE_WEIGHT = 0.0
NEAR_DUPLICATE = 0.6
MIN_SAMPLE = 8
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Found:
    """One retrieved chunk with its fused score."""

    chunk: StoredChunk
    score: float


def dense_weight(setting: float | str, embedder: Embedder | None, query: str) -> float:
    """The dense list's weight in the fusion."""
    if isinstance(setting, (int, float)):
        return float(setting)
    if embedder is not None and embedder.is_default and _CJK.search(query):
        return WEAK_DENSE_WEIGHT
    return 1.0


def rrf(lists: list[tuple[list[int], float]], k: int) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion of ranked id lists: sum of weight / (k + rank)."""
    scores: dict[int, float] = {}
    for ranked, weight in lists:
        if weight <= 0:
            continue
        for rank, item in enumerate(ranked, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def fingerprint(text: str) -> frozenset[int]:
    """A sample of the text's character 4-grams (about one in four), for near-duplicate checks."""
    grams = (zlib.crc32(text[i : i + 4].encode()) for i in range(max(1, len(text) - 3)))
    return frozenset(g for g in grams if g % 4 == 0)


def similar(a: frozenset[int], b: frozenset[int], threshold: float) -> bool:
    """Whether most of the smaller sample is in the other (too few samples: never)."""
    small = min(len(a), len(b))
    return small >= MIN_SAMPLE and len(a & b) / small >= threshold


def drop_near_duplicates(
    found: list[Found], limit: int, threshold: float = NEAR_DUPLICATE, cache: dict[str, frozenset[int]] | None = None
) -> list[Found]:
    """The first `limit` items, skipping any too similar to one already kept (overlapping chunks)."""
    kept: list[Found] = []
    grams: list[frozenset[int]] = []
    cache = {} if cache is None else cache
    for f in found:
        g = cache.get(f.chunk.id)
        if g is None:
            g = cache[f.chunk.id] = fingerprint(f.chunk.text)
        if any(similar(g, h, threshold) for h in grams) or any(f.chunk.text == k.chunk.text for k in kept):
            continue
        kept.append(f)
        grams.append(g)
        if len(kept) >= limit:
            break
    return kept


class Reranker:
    """A cross-encoder from a local path, loaded on first use."""

    def __init__(self, path: str):
        self.path = path
        self._model: Any = None
        self._lock = threading.Lock()

    def scores(self, query: str, texts: list[str]) -> list[float]:
        """Relevance of each text to the query (blocking)."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(self.path, device="cpu", local_files_only=True)
        return [float(s) for s in self._model.predict([(query, t) for t in texts], show_progress_bar=False)]


class Retriever:
    """Runs one query over a persona's index (blocking: call it from a thread)."""

    def __init__(
        self,
        embedder: Embedder | None,
        weight: float | str = "auto",
        rrf_k: int = 10,
        reranker: Reranker | None = None,
    ):
        self.embedder = embedder
        self.weight = weight
        self.rrf_k = rrf_k
        self.reranker = reranker

    def search(
        self, index: SourceIndex, vectors: Vectors | None, query: str, k: int, max_chapter: int | None, mode: Mode
    ) -> list[Found]:
        """The best `k` distinct chunks within the spoiler limit."""
        if k <= 0 or not query.strip() or not index.chunks:
            return []
        pool = max(4 * k, 20)
        lexical: list[int] = []
        dense: list[int] = []
        if mode != "dense":
            lexical = [i for i, _ in index.lexical.search(query, pool, max_chapter)]
        weight = dense_weight(self.weight, self.embedder, query)
        wanted = mode == "dense" or (mode == "hybrid" and weight > 0)
        if wanted and vectors is not None and self.embedder is not None:
            dense = self._dense(index, vectors, query, pool, max_chapter)
        if mode == "bm25" or not dense:
            ranked = [(i, 1.0 / (self.rrf_k + r)) for r, i in enumerate(lexical, 1)]
        elif mode == "dense":
            ranked = [(i, 1.0 / (self.rrf_k + r)) for r, i in enumerate(dense, 1)]
        else:
            ranked = rrf([(lexical, 1.0), (dense, weight)], self.rrf_k)
        found = [Found(index.chunks[i], s) for i, s in ranked[:pool]]
        if self.reranker is not None and found:
            scores = self.reranker.scores(query, [f.chunk.text for f in found])
            found = [Found(f.chunk, s) for f, s in sorted(zip(found, scores, strict=True), key=lambda p: -p[1])]
        return drop_near_duplicates(found, k, cache=index.fingerprints)

    def _dense(self, index: SourceIndex, vectors: Vectors, query: str, n: int, max_chapter: int | None) -> list[int]:
        assert self.embedder is not None
        if vectors.count() == 0:
            return []  # nothing embedded (a BM25-only ingest): don't load the model for nothing
        vector = self.embedder.encode([query])[0]
        out = []
        for cid, _ in vectors.query(vector, n, max_chapter):
            pos = index.positions.get(cid)
            # vectors of chunks a newer ingest removed may linger until it finishes
            if pos is not None and (max_chapter is None or index.chunks[pos].chapter <= max_chapter):
                out.append(pos)
        return out
