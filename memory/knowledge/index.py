"""A persona's source index as the bot reads it: chunks, their BM25, scene lines and theirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from memory.knowledge.catalog import Catalog, StoredChunk
from memory.knowledge.lexical import LexicalIndex
from memory.knowledge.scenes import Scene

CATALOG_FILE = "catalog.sqlite3"


@dataclass(frozen=True)
class Layout:
    """Where one persona's knowledge lives under data_dir/knowledge."""

    root: Path
    persona: str

    @property
    def folder(self) -> Path:
        """The persona's folder."""
        return self.root / self.persona

    @property
    def catalog(self) -> Path:
        """The catalog database."""
        return self.folder / CATALOG_FILE

    @property
    def lexical(self) -> Path:
        """The saved BM25 over chunks."""
        return self.folder / "bm25"

    @property
    def scene_lexical(self) -> Path:
        """The saved BM25 over scene lines."""
        return self.folder / "bm25-scenes"

    @property
    def chroma(self) -> Path:
        """The embedded Chroma folder (shared by every persona; one collection each)."""
        return self.root / "chroma"


@dataclass
class SourceIndex:
    """Everything retrieval needs in memory for one persona."""

    stamp: str
    chunks: list[StoredChunk]
    lexical: LexicalIndex
    scenes: list[Scene]
    scene_lexical: LexicalIndex
    positions: dict[str, int]
    fingerprints: dict[str, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, layout: Layout, tokenizer: str, save: bool = False) -> SourceIndex | None:
        """Read the catalog and the saved BM25 (rebuilt when stale); None when nothing was ingested."""
        if not layout.catalog.exists():
            return None
        catalog = Catalog(layout.catalog)
        try:
            stamp = catalog.generation
            chunks = catalog.chunks()
            scenes = catalog.scenes()
        finally:
            catalog.close()
        lexical = LexicalIndex.load(layout.lexical, stamp, tokenizer)
        if lexical is None or len(lexical) != len(chunks):
            lexical = LexicalIndex.build([c.text for c in chunks], [c.chapter for c in chunks], tokenizer)
            if save:
                lexical.save(layout.lexical, stamp)
        scene_lexical = LexicalIndex.load(layout.scene_lexical, stamp, tokenizer)
        if scene_lexical is None or len(scene_lexical) != len(scenes):
            scene_lexical = LexicalIndex.build([s.line for s in scenes], [s.chapter for s in scenes], tokenizer)
            if save:
                scene_lexical.save(layout.scene_lexical, stamp)
        positions = {c.id: i for i, c in enumerate(chunks)}
        return cls(stamp, chunks, lexical, scenes, scene_lexical, positions)
