"""Retrieval evaluation: a throwaway index from a corpus, recall@k, MRR@10 and latency per query."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memory.knowledge.embedding import Embedder
from memory.knowledge.index import Layout, SourceIndex
from memory.knowledge.ingest import Ingestor
from memory.knowledge.reading import SourceError
from memory.knowledge.retrieval import Mode, Retriever
from memory.knowledge.vectors import Vectors, collection_name, open_client


@dataclass(frozen=True, slots=True)
class Query:
    """One evaluation question with the ids of the passages that answer it."""

    id: str
    query: str
    gold: frozenset[str]


def read_queries(path: Path) -> list[Query]:
    """`{"id", "query", "gold": [ids]}` per line."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                rec = json.loads(line)
                out.append(Query(str(rec["id"]), str(rec["query"]), frozenset(str(g) for g in rec["gold"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(f'{path}:{n}: expected {{"id", "query", "gold": [ids]}} ({exc})') from None
    return out


def rank_metrics(ranked: list[list[str]], gold: list[frozenset[str]], ks: list[int]) -> dict[str, float]:
    """recall@k (a gold id within the first k) for each k, and MRR@10."""
    out: dict[str, float] = {}
    n = len(ranked) or 1
    for k in ks:
        out[f"recall@{k}"] = sum(any(d in g for d in r[:k]) for r, g in zip(ranked, gold, strict=True)) / n
    rr = 0.0
    for r, g in zip(ranked, gold, strict=True):
        for pos, d in enumerate(r[:10], 1):
            if d in g:
                rr += 1.0 / pos
                break
    out["mrr@10"] = rr / n
    return out


def evaluate(
    corpus: Path,
    queries: Path,
    mode: Mode = "hybrid",
    ks: tuple[int, ...] = (1, 5, 10, 20),
    embedder: Embedder | None = None,
    tokenizer: str = "bigram",
    chunk_chars: int = 600,
    chunk_overlap: int = 80,
    dense_weight: float | str = "auto",
    rrf_k: int = 10,
    progress: bool = True,
) -> dict[str, object]:
    """Build an index of `corpus` in a temporary folder and run every query against it."""
    items = read_queries(queries)
    embedder = embedder if mode != "bm25" else None
    with tempfile.TemporaryDirectory(prefix="rp-eval-") as tmp:
        layout = Layout(Path(tmp), "eval")
        client = open_client("", layout.chroma) if embedder else None
        ingestor = Ingestor(layout, [], chunk_chars, chunk_overlap, "", tokenizer, embedder,
                            (lambda: client) if client else None, progress=progress)
        started = time.perf_counter()
        ingestor.run([corpus])
        ingest_s = time.perf_counter() - started
        index = SourceIndex.load(layout, tokenizer)
        assert index is not None
        vectors = Vectors(client, collection_name("eval", embedder.key), embedder.name) if embedder else None
        retriever = Retriever(embedder, dense_weight, rrf_k)
        if embedder is not None:
            embedder.encode(["warm up"])  # the model load is not a query's latency
        depth = max(ks)
        ranked: list[list[str]] = []
        latency: list[float] = []
        for q in items:
            t = time.perf_counter()
            found = retriever.search(index, vectors, q.query, depth * 2, None, mode)
            latency.append((time.perf_counter() - t) * 1000)
            ranked.append(list(dict.fromkeys(f.chunk.doc or f.chunk.id for f in found))[:depth])
        if client is not None and hasattr(client, "close"):
            client.close()
    result: dict[str, object] = dict(rank_metrics(ranked, [q.gold for q in items], list(ks)))
    result.update({
        "n": len(items),
        "p50_ms": float(np.percentile(latency, 50)) if latency else 0.0,
        "p95_ms": float(np.percentile(latency, 95)) if latency else 0.0,
        "mode": mode,
        "chunks": len(index.chunks),
        "ingest_s": ingest_s,
    })
    return result
