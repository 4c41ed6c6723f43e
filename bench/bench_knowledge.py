"""Knowledge benchmark: ingestion of the four novels, re-ingest, query latency, 西游记 question set.

Prints numbers; asserts nothing. Run: .venv/bin/python bench/bench_knowledge.py [--no-dense] [--json]
--export DIR writes the 西游记 set in `eval retrieval` format (corpus.jsonl, queries.jsonl) to DIR
(outside the repository: the corpus is the novel's text).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from memory.knowledge.embedders import LocalEmbedder  # noqa: E402
from memory.knowledge.evaluate import rank_metrics  # noqa: E402
from memory.knowledge.index import Layout, SourceIndex  # noqa: E402
from memory.knowledge.ingest import Ingestor  # noqa: E402
from memory.knowledge.lexical import LexicalIndex  # noqa: E402
from memory.knowledge.retrieval import Mode, Retriever  # noqa: E402
from memory.knowledge.vectors import Vectors, collection_name, open_client  # noqa: E402
from tests.support.shared_data import shared_dir  # noqa: E402

CORPORA = shared_dir() / "corpora"
QUESTIONS = ROOT / "bench" / "data" / "xiyouji_questions.jsonl"
NAMES = ["孙悟空", "悟空", "行者", "孙行者", "美猴王", "齐天大圣", "大圣", "猴王"]
KS = [1, 5, 10, 20]


def rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(ms: list[float]) -> tuple[float, float]:
    """p50, p95 in ms."""
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def questions() -> list[dict[str, object]]:
    """The hand-written 西游记 reader questions."""
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def gold_chunks(index: SourceIndex, q: dict[str, object]) -> set[str]:
    """Chunks in the question's chapters that contain its answer."""
    chapters = set(q["chapters"])  # type: ignore[call-overload]
    return {c.id for c in index.chunks if c.chapter in chapters and str(q["answer"]) in c.text}


def run_set(index: SourceIndex, retriever: Retriever, vectors: Vectors | None, mode: Mode) -> dict[str, float]:
    """Chunk-level and chapter-level recall@k on the question set."""
    qs = questions()
    ranked, chapters, latency = [], [], []
    for q in qs:
        t = time.perf_counter()
        found = retriever.search(index, vectors, str(q["query"]), max(KS), None, mode)
        latency.append((time.perf_counter() - t) * 1000)
        ranked.append([f.chunk.id for f in found])
        chapters.append([str(f.chunk.chapter) for f in found])
    out = rank_metrics(ranked, [frozenset(gold_chunks(index, q)) for q in qs], KS)
    by_chapter = rank_metrics(chapters, [frozenset(str(c) for c in q["chapters"]) for q in qs], KS)  # type: ignore[attr-defined]
    out.update({f"chapter_{k}": v for k, v in by_chapter.items()})
    out["p50_ms"], out["p95_ms"] = pct(latency)
    out["n"] = len(qs)
    return out


def latency(index: SourceIndex, retriever: Retriever, vectors: Vectors | None, mode: Mode, reps: int = 3) -> tuple[float, float]:
    """p50/p95 of top-4 queries (the bot's default) over the question set, repeated."""
    qs = [str(q["query"]) for q in questions()] * reps
    ms = []
    for query in qs:
        t = time.perf_counter()
        retriever.search(index, vectors, query, 4, None, mode)
        ms.append((time.perf_counter() - t) * 1000)
    return pct(ms)


def main() -> None:
    """Run every part and print the numbers."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-dense", action="store_true", help="skip the MiniLM parts (slow on 2 cores)")
    ap.add_argument("--export", type=Path, help="write the 西游记 set as eval files to this folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    novels = [CORPORA / f"{name}.txt" for name in ("xiyouji", "sanguo", "shuihu", "honglou")]
    chars = sum(len(p.read_text(encoding="utf-8")) for p in novels)
    results: dict[str, object] = {"novels": [p.name for p in novels], "chars": chars}
    with tempfile.TemporaryDirectory(prefix="rp-bench-") as tmp:
        layout = Layout(Path(tmp), "wukong")
        ing = Ingestor(layout, NAMES, progress=False)
        t = time.perf_counter()
        report = ing.run(novels)
        results["ingest_bm25_s"] = time.perf_counter() - t
        results["chunks"] = report.chunks
        results["scenes"] = report.scenes
        results["chunks_per_s"] = report.chunks / float(results["ingest_bm25_s"])  # type: ignore[arg-type]
        results["ingest_peak_rss_mb"] = rss_mb()
        t = time.perf_counter()
        again = ing.run(novels)
        results["reingest_unchanged_s"] = time.perf_counter() - t
        assert again.changed == []
        t = time.perf_counter()
        index = SourceIndex.load(layout, "bigram")
        assert index is not None
        results["index_load_s"] = time.perf_counter() - t
        bm25 = Retriever(None)
        results["bm25_p50_ms"], results["bm25_p95_ms"] = latency(index, bm25, None, "bm25")
        t = time.perf_counter()
        big = LexicalIndex.build([c.text for c in index.chunks] * 10, [c.chapter for c in index.chunks] * 10)
        results["x10_build_s"] = time.perf_counter() - t
        results["x10_chunks"] = len(big)
        tenfold = SourceIndex(index.stamp, index.chunks * 10, big, [], big, {})
        results["x10_bm25_p50_ms"], results["x10_bm25_p95_ms"] = latency(tenfold, bm25, None, "bm25")
        results["peak_rss_mb"] = rss_mb()

        xlayout = Layout(Path(tmp), "xiyouji")
        # the packaged MiniLM needs the embed extra (.venv-embed); without it, BM25 only
        dense = not args.no_dense and importlib.util.find_spec("sentence_transformers") is not None
        embedder = LocalEmbedder("minilm") if dense else None
        client = open_client("", xlayout.chroma) if embedder else None
        xing = Ingestor(xlayout, NAMES, embedder=embedder, client=(lambda: client) if client else None, progress=not args.json)
        xreport = xing.run([CORPORA / "xiyouji.txt"])
        if embedder:
            results["embed_chunks"] = xreport.embedded
            results["embed_chunks_per_s"] = xreport.embedded / max(xreport.embed_seconds, 1e-9)
        xindex = SourceIndex.load(xlayout, "bigram")
        assert xindex is not None
        results["xiyouji_bm25"] = run_set(xindex, bm25, None, "bm25")
        if embedder and client:
            vectors = Vectors(client, collection_name("xiyouji", embedder.key), embedder.name)
            retriever = Retriever(embedder)
            retriever.search(xindex, vectors, "热身", 1, None, "dense")
            results["xiyouji_dense"] = run_set(xindex, retriever, vectors, "dense")
            results["xiyouji_hybrid"] = run_set(xindex, retriever, vectors, "hybrid")
            results["hybrid_p50_ms"], results["hybrid_p95_ms"] = latency(xindex, retriever, vectors, "hybrid")
            results["peak_rss_dense_mb"] = rss_mb()
        if args.export:
            export(xindex, args.export)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
        return
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()))
        else:
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")


def export(index: SourceIndex, folder: Path) -> None:
    """The 西游记 set in `eval retrieval` format: chunks as the corpus, gold chunk ids per question."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for c in index.chunks:
            f.write(json.dumps({"id": c.id, "text": c.text, "chapter": c.chapter}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in questions():
            f.write(json.dumps({"id": q["id"], "query": q["query"], "gold": sorted(gold_chunks(index, q))}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
