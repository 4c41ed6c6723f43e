"""`ingest` and `eval retrieval`: build and measure the knowledge index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.boot import settings_from

MAX_K = 1000  # a recall cut-off past this measures nothing a reply could use


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the knowledge commands."""
    p = sub.add_parser("ingest", parents=[common], help="index a persona's source work (novel, .epub, .jsonl)")
    p.add_argument("--persona", required=True, help="persona id (folder name of its card)")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders; default: the card's [knowledge] sources")
    p.add_argument("--prune", action="store_true", help="forget files ingested before but not named now")
    p.add_argument("--mode", choices=["bm25", "dense", "hybrid"], help="bm25: skip embeddings (default: [knowledge] mode)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=ingest_cmd)

    ev = sub.add_parser("eval", parents=[common], help="evaluate parts of the bot")
    ev_sub = ev.add_subparsers(dest="what", required=True, metavar="WHAT")
    r = ev_sub.add_parser("retrieval", parents=[common], help="recall@k / MRR@10 / latency on a corpus + queries")
    r.add_argument("--corpus", required=True, type=Path, help='JSONL, {"id", "text"} per line')
    r.add_argument("--queries", required=True, type=Path, help='JSONL, {"id", "query", "gold": [ids]} per line')
    r.add_argument("--mode", choices=["bm25", "dense", "hybrid"], help="default: [knowledge] mode")
    r.add_argument("--k", default="1,5,10,20", help="cut-offs, comma-separated (default 1,5,10,20)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=eval_retrieval_cmd)


def ingest_cmd(args: argparse.Namespace) -> int:
    """Ingest files for one persona."""
    from memory.knowledge import ingestor_for
    from memory.knowledge.embedders import open_embedder
    from memory.knowledge.embedding import EmbeddingError
    from memory.knowledge.reading import SourceError
    from persona.library import PersonaLibrary

    settings = settings_from(args)
    cfg = settings.knowledge
    library = PersonaLibrary.configured(settings.personas)
    persona = library.get(args.persona)
    paths = list(args.paths) or [persona.folder / s for s in persona.card.knowledge.sources]
    if not paths:
        print(f"error: name files to ingest, or list them in {persona.id}'s card [knowledge] sources", file=sys.stderr)
        return 2
    mode = args.mode or cfg.mode
    embedder = open_embedder(cfg)
    if embedder is None and mode != "bm25":
        if no_embedder(mode):
            return 2
        mode = "bm25"
    ingestor = ingestor_for(settings, persona, embedder, mode, progress=not args.quiet)
    try:
        report = ingestor.run(paths, prune=args.prune)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EmbeddingError as exc:
        print(f"error: {exc} (the batches embedded so far are kept; run ingest again to go on)", file=sys.stderr)
        return 1
    finally:
        if embedder is not None:
            embedder.close()
    print(f"{persona.id}: " + "\n".join(report.lines()))
    return 0


def no_embedder(mode: str) -> bool:
    """Say that dense retrieval has no embedder; True when that is an error (mode dense), else BM25 goes on."""
    from memory.knowledge.embedding import HOW_TO_ADD

    if mode == "dense":
        print(f"error: mode dense needs an embedder: {HOW_TO_ADD}", file=sys.stderr)
        return True
    print(f"note: no embedder configured, so BM25 only; {HOW_TO_ADD}", file=sys.stderr)
    return False


def eval_retrieval_cmd(args: argparse.Namespace) -> int:
    """Evaluate retrieval on a corpus and a query set."""
    from memory.knowledge.embedders import open_embedder
    from memory.knowledge.embedding import EmbeddingError
    from memory.knowledge.evaluate import evaluate
    from memory.knowledge.reading import SourceError

    settings = settings_from(args)
    cfg = settings.knowledge
    try:
        ks = tuple(sorted({int(k) for k in args.k.split(",") if k.strip()}))
    except ValueError:
        print(f"error: --k takes integers like 1,5,10 (got {args.k})", file=sys.stderr)
        return 2
    if any(not 1 <= k <= MAX_K for k in ks):
        print(f"error: --k values must be from 1 to {MAX_K} (got {args.k})", file=sys.stderr)
        return 2
    mode = args.mode or cfg.mode
    embedder = open_embedder(cfg) if mode != "bm25" else None
    if embedder is None and mode != "bm25":
        if no_embedder(mode):
            return 2
        mode = "bm25"
    try:
        result = evaluate(
            args.corpus, args.queries, mode, ks or (1, 5, 10, 20), embedder,
            cfg.tokenizer, cfg.chunk_chars, cfg.chunk_overlap, cfg.dense_weight, cfg.rrf_k, progress=not args.json,
        )
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EmbeddingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedder is not None:
            embedder.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value:.4f}" if isinstance(value, float) else f"{key:>10}: {value}")
    return 0
