"""Ingestion: catalog, BM25, Chroma vectors; incremental, resumable, prunable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memory.knowledge.catalog import Catalog
from memory.knowledge.embedding import Embedder
from memory.knowledge.index import Layout, SourceIndex
from memory.knowledge.ingest import Ingestor
from memory.knowledge.vectors import Vectors, collection_name, open_client
from tests.knowledge.conftest import WUKONG_NAMES

STORY = {
    1: "The stone monkey was born on the Flower Fruit Mountain. He found the cave behind the waterfall.",
    2: "The monkey crossed the ocean and learned seventy-two transformations from his teacher.",
    3: "The monkey stole the peaches of immortality and fought the armies of heaven.",
}


def story(tmp_path: Path, chapters: dict[int, str] = STORY, name: str = "story.txt") -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"Chapter {n}\n{text}" for n, text in chapters.items()), encoding="utf-8")
    return path


def ingestor(tmp_path: Path, embedder: Embedder | None = None, **kw: object) -> Ingestor:
    layout = Layout(tmp_path / "kb", "wukong")
    client = open_client("", layout.chroma) if embedder else None
    return Ingestor(layout, WUKONG_NAMES, 300, 40, "", "bigram", embedder,
                    (lambda: client) if client else None, progress=False, **kw)  # type: ignore[arg-type]


def vectors(ing: Ingestor) -> Vectors:
    assert ing.client is not None and ing.embedder is not None
    return Vectors(ing.client(), collection_name("wukong", ing.embedder.key), ing.embedder.name)


def test_bm25_ingest_of_a_novel(tmp_path: Path, novel: Callable[..., Path]) -> None:
    ing = ingestor(tmp_path)
    report = ing.run([novel(1, 3)])
    assert report.files == 1 and report.changed == ["xiyou"] and report.added == report.chunks > 10
    assert report.scenes > 5 and report.embedded == 0
    index = SourceIndex.load(ing.layout, "bigram")
    assert index is not None
    assert {c.chapter for c in index.chunks} == {1, 2, 3}
    assert all(c.name == "xiyou" and c.title.startswith("第") for c in index.chunks)
    hits = index.lexical.search("菩提祖师 传授 筋斗云", 3)
    assert index.chunks[hits[0][0]].chapter == 2
    again = ing.run([novel(1, 3)])
    assert again.changed == [] and again.added == 0 and again.chunks == report.chunks


def test_dense_ingest_is_incremental(tmp_path: Path, embedder: Embedder) -> None:
    ing = ingestor(tmp_path, embedder)
    path = story(tmp_path)
    first = ing.run([path])
    assert first.embedded == first.chunks == 3
    assert vectors(ing).count() == 3
    assert vectors(ing).collection.metadata["embedding_model"] == embedder.name
    second = ing.run([path])
    assert second.embedded == 0 and second.changed == []
    # a changed chapter replaces only its own chunk
    story(tmp_path, {**STORY, 2: "The monkey met the Bodhi patriarch and learned the cloud somersault."})
    third = ing.run([path])
    assert (third.embedded, third.added, third.removed) == (1, 1, 1)
    assert vectors(ing).count() == 3
    stored = vectors(ing).collection.get(include=["metadatas", "documents"])
    by_chapter = {m["chapter"]: d for m, d in zip(stored["metadatas"], stored["documents"], strict=True)}
    assert "Bodhi" in by_chapter[2] and "peaches" in by_chapter[3]


def test_prune_forgets_files_not_named(tmp_path: Path, embedder: Embedder) -> None:
    ing = ingestor(tmp_path, embedder)
    a = story(tmp_path, name="a.txt")
    b = story(tmp_path, {1: "Pigsy ate the watermelon alone."}, name="b.txt")
    ing.run([a, b])
    assert vectors(ing).count() == 4
    kept = ing.run([a])  # without --prune, b stays
    assert kept.chunks == 4
    pruned = ing.run([a], prune=True)
    assert pruned.pruned == ["b"] and pruned.removed == 1 and pruned.chunks == 3
    assert vectors(ing).count() == 3
    catalog = Catalog(ing.layout.catalog)
    assert [f.name for f in catalog.files()] == ["a"]
    catalog.close()


class Interrupted(Exception):
    pass


class FailingEmbedder:
    """The real embedder, interrupted after `calls` batches, as a Ctrl-C would."""

    def __init__(self, real: Embedder, calls: int):
        self.real = real
        self.name, self.key, self.is_default = real.name, real.key, real.is_default
        self.calls = calls

    @property
    def loaded(self) -> bool:
        return self.real.loaded

    def warm(self) -> None:
        self.real.warm()

    def encode(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        if self.calls <= 0:
            raise Interrupted
        self.calls -= 1
        return self.real.encode(texts, batch_size)

    def close(self) -> None:
        pass


def test_interrupted_ingest_resumes(tmp_path: Path, embedder: Embedder) -> None:
    path = story(tmp_path, {n: f"Chapter text number {n} about the monkey king." for n in range(1, 7)})
    with pytest.raises(Interrupted):
        ingestor(tmp_path, FailingEmbedder(embedder, 1), batch=2).run([path])
    resumed = ingestor(tmp_path, embedder, batch=2).run([path])
    assert resumed.changed == [] and resumed.embedded == 4 and resumed.chunks == 6
    ing = ingestor(tmp_path, embedder)
    assert vectors(ing).count() == 6
    assert ing.run([path]).embedded == 0


def test_bm25_only_run_drops_vectors_of_changed_chunks(tmp_path: Path, embedder: Embedder) -> None:
    path = story(tmp_path)
    ing = ingestor(tmp_path, embedder)
    ing.run([path])
    story(tmp_path, {**STORY, 3: "The monkey was pressed under a mountain for five hundred years."})
    lexical_only = ingestor(tmp_path, embedder, embed=False).run([path])
    assert lexical_only.embedded == 0 and lexical_only.removed == 1
    assert vectors(ing).count() == 2  # the old chapter 3 vector is gone, the new one not yet made
    assert ingestor(tmp_path, embedder).run([path]).embedded == 1
    assert vectors(ing).count() == 3


def test_changed_chunk_size_recuts_unchanged_files(tmp_path: Path, novel: Callable[..., Path]) -> None:
    path = novel(1, 1)
    first = ingestor(tmp_path).run([path])
    again = Ingestor(Layout(tmp_path / "kb", "wukong"), WUKONG_NAMES, 200, 20, progress=False).run([path])
    assert again.changed == ["xiyou"] and again.chunks > first.chunks
