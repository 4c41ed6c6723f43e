"""Ingestion: files into chunks, scenes, vectors and BM25, incrementally and resumably."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memory.knowledge.catalog import Catalog
from memory.knowledge.chunking import chunk_sections
from memory.knowledge.embedding import Embedder
from memory.knowledge.index import Layout, SourceIndex
from memory.knowledge.reading import expand, file_hash, read_source
from memory.knowledge.scenes import find_scenes
from memory.knowledge.vectors import Vectors, collection_name


@dataclass
class IngestReport:
    """What one ingest run did."""

    files: int = 0
    changed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    chunks: int = 0
    added: int = 0
    removed: int = 0
    scenes: int = 0
    embedded: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def lines(self) -> list[str]:
        """A short human summary."""
        rate = f" ({self.embedded / self.embed_seconds:.0f} chunks/s)" if self.embed_seconds > 0 else ""
        return [
            f"files: {self.files} ({len(self.changed)} changed, {len(self.pruned)} pruned)",
            f"chunks: {self.chunks} in index, {self.added} added, {self.removed} removed; scenes: {self.scenes}",
            f"embedded: {self.embedded}{rate}; took {self.seconds:.1f}s",
        ]


@dataclass
class Ingestor:
    """Brings one persona's index up to date with a set of files."""

    layout: Layout
    names: list[str]
    chunk_chars: int = 600
    chunk_overlap: int = 80
    pattern: str = ""
    tokenizer: str = "bigram"
    embedder: Embedder | None = None
    client: Callable[[], Any] | None = None
    batch: int = 32
    progress: bool = True
    embed: bool = True
    on_progress: Callable[[str, int, int], None] | None = None  # (stage, done, total), from the ingesting thread
    _vectors: Vectors | None = None

    def run(self, paths: list[Path], prune: bool = False) -> IngestReport:
        """Ingest `paths` (files or folders); with `prune`, forget files not among them."""
        started = time.perf_counter()
        report = IngestReport()
        files = expand(paths)
        catalog = Catalog(self.layout.catalog)
        try:
            keys = self._store(catalog, files, report)
            if prune:
                for row in catalog.files():
                    if row.key not in keys:
                        report.pruned.append(row.name)
                        report.removed += self._drop(catalog, catalog.remove(row.key))
            self._embed(catalog, keys, report)
            self._told("indexing", 0, 1)
            index = SourceIndex.load(self.layout, self.tokenizer, save=True)
            self._told("indexing", 1, 1)
            report.chunks = len(index.chunks) if index else 0
            report.scenes = len(index.scenes) if index else 0
        finally:
            catalog.close()
        report.files = len(files)
        report.seconds = time.perf_counter() - started
        return report

    def _store(self, catalog: Catalog, files: list[Path], report: IngestReport) -> set[str]:
        """Read changed files into the catalog; returns the keys of every file named."""
        keys: set[str] = set()
        for n, path in enumerate(self._bar(files, "files", "file")):
            self._told("reading", n, len(files))
            key = str(path.resolve())
            keys.add(key)
            # the settings that shape chunks and scenes are part of the signature: changing them
            # re-cuts the file (chunks whose text stays the same keep their ids and vectors)
            sha = f"{file_hash(path)}:{self._settings_hash()}"
            row = catalog.file(key)
            if row is not None and row.sha == sha:
                continue
            source = read_source(path, self.pattern, sha)
            chunks = chunk_sections(source.sections, key, self.chunk_chars, self.chunk_overlap)
            scenes = find_scenes(source.sections, key, self.names)
            old = catalog.chunk_ids(key)
            gone = catalog.replace(key, source.name, sha, chunks, scenes)
            report.changed.append(source.name)
            report.added += len({c.id for c in chunks} - old)
            report.removed += self._drop(catalog, gone)
            if self.embedder is None or not self.embed:
                catalog.set_done(key)
        return keys

    def _embed(self, catalog: Catalog, keys: set[str], report: IngestReport) -> None:
        """Write vectors for every chunk that has none yet (resumes after an interrupt)."""
        if self.embedder is None or not self.embed:
            return
        name = collection_name(self.layout.persona, self.embedder.key)
        names = {row.key: row.name for row in catalog.files()}
        todo = {key: catalog.unembedded(key, name) for key in sorted(keys)}
        total = sum(len(v) for v in todo.values())
        if total:
            vectors = self._vectors_for(name)
            self.embedder.warm()  # the model load (or the first call to a server) is not embedding throughput
            started = time.perf_counter()
            bar = self._bar(None, "embedding", "chunk", total)
            for key, chunks in todo.items():
                for i in range(0, len(chunks), self.batch):
                    part = chunks[i : i + self.batch]
                    vectors.upsert(part, self.embedder.encode([c.text for c in part], self.batch), names)
                    catalog.mark_embedded([c.id for c in part], name)
                    report.embedded += len(part)
                    bar.update(len(part))
                    self._told("embedding", report.embedded, total)
                catalog.set_done(key)
            bar.close()
            report.embed_seconds = time.perf_counter() - started
        for key in keys:
            catalog.set_done(key)

    def _told(self, stage: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, done, total)

    def _settings_hash(self) -> str:
        text = f"{self.chunk_chars}|{self.chunk_overlap}|{self.pattern}|{'|'.join(sorted(self.names))}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def _drop(self, catalog: Catalog, ids: list[str]) -> int:
        """Remove vectors of chunks that are gone (also in a BM25-only run, when vectors exist)."""
        if ids and self.embedder is not None and self.client is not None:
            self._vectors_for(collection_name(self.layout.persona, self.embedder.key)).delete(ids)
        return len(ids)

    def _vectors_for(self, name: str) -> Vectors:
        if self._vectors is None:
            assert self.client is not None and self.embedder is not None
            self._vectors = Vectors(self.client(), name, self.embedder.name)
        return self._vectors

    def _bar(self, items: Any, desc: str, unit: str, total: int | None = None) -> Any:
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit=unit, total=total, file=sys.stderr, disable=not self.progress, dynamic_ncols=True)
