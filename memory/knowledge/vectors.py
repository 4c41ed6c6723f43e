"""The vector store: one Chroma collection per persona and embedding model, never Chroma's own embedder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from memory.knowledge.chunking import Chunk

VECTOR_SCHEMA = 1


def open_client(chroma_url: str, folder: Path) -> Any:
    """HttpClient for `chroma_url`, else an embedded PersistentClient in `folder`; telemetry off."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        url = urlparse(chroma_url)
        ssl = url.scheme == "https"
        port = url.port or (443 if ssl else 8000)
        return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=port, ssl=ssl, settings=settings)
    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder), settings=settings)


def collection_name(persona: str, model_key: str) -> str:
    """A valid Chroma name (3-512 of [a-zA-Z0-9._-]) for this persona and model."""
    safe = re.sub(r"[^a-zA-Z0-9._-]+", "-", persona).strip("-._") or "persona"
    return f"kb-v{VECTOR_SCHEMA}-{safe}-{model_key}"[:512]


class Vectors:
    """Chunk vectors with their chapter, so a spoiler limit filters inside the query."""

    def __init__(self, client: Any, name: str, model_name: str):
        self.name = name
        self.collection = client.get_or_create_collection(
            name,
            metadata={"embedding_model": model_name, "schema": VECTOR_SCHEMA},
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )

    def upsert(self, chunks: list[Chunk], vectors: list[list[float]], names: dict[str, str]) -> None:
        """Write vectors; metadata carries source, chapter, title and offsets."""
        if not chunks:
            return
        self.collection.upsert(
            ids=[c.id for c in chunks],
            embeddings=vectors,
            documents=[c.text for c in chunks],
            metadatas=[
                {"source": names.get(c.source, c.source), "chapter": c.chapter, "title": c.title,
                 "start": c.start, "end": c.end, "doc": c.doc}
                for c in chunks
            ],
        )

    def delete(self, ids: list[str]) -> None:
        """Drop vectors by chunk id."""
        for i in range(0, len(ids), 1000):
            self.collection.delete(ids=ids[i : i + 1000])

    def count(self) -> int:
        """How many vectors the collection holds."""
        return int(self.collection.count())

    def query(self, vector: list[float], k: int, max_chapter: int | None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest chunks within the spoiler limit."""
        if k <= 0 or self.count() == 0:
            return []
        where = {"chapter": {"$lte": max_chapter}} if max_chapter is not None else None
        found = self.collection.query(
            query_embeddings=[vector], n_results=k, where=where, include=["distances"]
        )
        ids, dists = found["ids"][0], (found.get("distances") or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=False)]
