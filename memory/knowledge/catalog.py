"""The catalog: one SQLite file per persona listing ingested files, chunks, scenes and embeddings."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from memory.knowledge.chunking import Chunk
from memory.knowledge.scenes import Scene

CATALOG_SCHEMA = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (key TEXT PRIMARY KEY, name TEXT NOT NULL, sha TEXT NOT NULL,
    chunks INTEGER NOT NULL, done INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (id TEXT PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL,
    chapter INTEGER NOT NULL, title TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    text TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks (source);
CREATE TABLE IF NOT EXISTS scenes (id TEXT PRIMARY KEY, source TEXT NOT NULL, chapter INTEGER NOT NULL,
    speaker TEXT NOT NULL, line TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scenes_source ON scenes (source);
CREATE TABLE IF NOT EXISTS embedded (id TEXT NOT NULL, collection TEXT NOT NULL, PRIMARY KEY (id, collection));
"""


@dataclass(frozen=True, slots=True)
class FileRow:
    """What the catalog remembers of one ingested file."""

    key: str
    name: str
    sha: str
    chunks: int
    done: bool


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as read back for retrieval."""

    id: str
    name: str
    chapter: int
    title: str
    text: str
    doc: str


class Catalog:
    """Ingest bookkeeping; every change to chunks moves the generation on."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_TABLES)
        if self.get("schema") is None:
            self.put("schema", str(CATALOG_SCHEMA))
            self.put("generation", uuid.uuid4().hex)
        self.db.commit()

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def get(self, key: str) -> str | None:
        """A meta value."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Set a meta value (committed with the next commit)."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> str:
        """Changes whenever the set of chunks or scenes changes."""
        return self.get("generation") or ""

    def file(self, key: str) -> FileRow | None:
        """The row of one file."""
        row = self.db.execute("SELECT key, name, sha, chunks, done FROM files WHERE key = ?", (key,)).fetchone()
        return None if row is None else FileRow(row[0], row[1], row[2], row[3], bool(row[4]))

    def files(self) -> list[FileRow]:
        """Every ingested file."""
        rows = self.db.execute("SELECT key, name, sha, chunks, done FROM files ORDER BY key").fetchall()
        return [FileRow(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def replace(self, key: str, name: str, sha: str, chunks: list[Chunk], scenes: list[Scene]) -> list[str]:
        """Make this file's chunks and scenes exactly these; returns the ids that went away."""
        old = self.chunk_ids(key)
        new = {c.id for c in chunks}
        gone = sorted(old - new)
        self._delete_chunks(gone)
        self.db.executemany(
            'INSERT OR IGNORE INTO chunks (id, source, name, chapter, title, start, "end", text, doc)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.id, key, name, c.chapter, c.title, c.start, c.end, c.text, c.doc) for c in chunks if c.id not in old],
        )
        self.db.execute("DELETE FROM scenes WHERE source = ?", (key,))
        self.db.executemany(
            "INSERT OR IGNORE INTO scenes (id, source, chapter, speaker, line) VALUES (?, ?, ?, ?, ?)",
            [(s.id, key, s.chapter, s.speaker, s.line) for s in scenes],
        )
        self.db.execute(
            "INSERT OR REPLACE INTO files (key, name, sha, chunks, done) VALUES (?, ?, ?, ?, 0)",
            (key, name, sha, len(chunks)),
        )
        self.put("generation", uuid.uuid4().hex)
        self.db.commit()
        return gone

    def remove(self, key: str) -> list[str]:
        """Forget a file; returns its chunk ids."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE source = ?", (key,))]
        self._delete_chunks(ids)
        self.db.execute("DELETE FROM scenes WHERE source = ?", (key,))
        self.db.execute("DELETE FROM files WHERE key = ?", (key,))
        self.put("generation", uuid.uuid4().hex)
        self.db.commit()
        return ids

    def chunk_ids(self, key: str) -> set[str]:
        """Ids of this file's chunks."""
        return {r[0] for r in self.db.execute("SELECT id FROM chunks WHERE source = ?", (key,))}

    def set_done(self, key: str) -> None:
        """Mark a file as completely ingested (chunks stored, embeddings written)."""
        self.db.execute("UPDATE files SET done = 1 WHERE key = ?", (key,))
        self.db.commit()

    def unembedded(self, key: str, collection: str) -> list[Chunk]:
        """This file's chunks that have no vector in `collection` yet."""
        rows = self.db.execute(
            'SELECT id, source, chapter, title, start, "end", text, doc FROM chunks WHERE source = ?'
            " AND id NOT IN (SELECT id FROM embedded WHERE collection = ?) ORDER BY start",
            (key, collection),
        ).fetchall()
        return [Chunk(*r) for r in rows]

    def mark_embedded(self, ids: Iterable[str], collection: str) -> None:
        """Record vectors written (committed at once, so an interrupted ingest resumes here)."""
        self.db.executemany("INSERT OR IGNORE INTO embedded (id, collection) VALUES (?, ?)", [(i, collection) for i in ids])
        self.db.commit()

    def chunks(self) -> list[StoredChunk]:
        """Every chunk, in file and text order."""
        rows = self.db.execute("SELECT id, name, chapter, title, text, doc FROM chunks ORDER BY source, start, id").fetchall()
        return [StoredChunk(*r) for r in rows]

    def scenes(self) -> list[Scene]:
        """Every scene line."""
        rows = self.db.execute("SELECT id, source, chapter, speaker, line FROM scenes ORDER BY source, chapter, id").fetchall()
        return [Scene(*r) for r in rows]

    def _delete_chunks(self, ids: list[str]) -> None:
        self.db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM embedded WHERE id = ?", [(i,) for i in ids])
