"""The knowledge store: the character's source work (Chroma + BM25), lorebook and scenes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.config import Settings
from bot.lookup import Knowledge, NoKnowledge
from memory.knowledge.base import KnowledgeBase
from memory.knowledge.catalog import Catalog
from memory.knowledge.index import CATALOG_FILE


def knowledge_root(settings: Settings) -> Path:
    """Where indexes live: data_dir/knowledge."""
    return settings.bot.data_dir / "knowledge"


async def open_knowledge(settings: Settings) -> Knowledge:
    """The knowledge lookup for the bot (built once by the composition root; opens nothing yet)."""
    if not settings.knowledge.enabled:
        return NoKnowledge()
    return KnowledgeBase(settings.knowledge, knowledge_root(settings))


async def knowledge_check(settings: Settings) -> tuple[bool, str, str]:
    """For `doctor`: (ok, detail, fix)."""
    cfg = settings.knowledge
    if not cfg.enabled:
        return True, "disabled", ""
    if cfg.embedding_model and cfg.mode != "bm25" and not Path(cfg.embedding_model).exists():
        return (False, f"embedding_model {cfg.embedding_model} is not a local folder",
                "set [knowledge] embedding_model to a downloaded sentence-transformers folder, or leave it empty")
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
    model = cfg.embedding_model or "packaged MiniLM"
    if not found:
        return True, f"mode {cfg.mode}; no source ingested, lore comes from the cards", \
            "python -m bot ingest --persona ID FILE... to add a source work"
    return True, f"mode {cfg.mode}, {model}; " + ", ".join(found), ""
