"""The side file of turn embeddings: every turn is embedded once, per conversation and per embedder.

Why a file under data_dir and not the conversation store: vectors are derived data (each can be
made again from its turn), large beside the turns (10,000 turns of a 1,024-wide model are 20 MB
even as float16), and tied to one embedder; the store contract stays what both backends keep, and
Redis memory goes to conversations. A lost file costs one re-embedding, nothing else.

A vector is keyed by the embedder's key (model and where it runs), the conversation, and a digest
of the text that was embedded: a seq reused after the store was wiped never picks up a stale
vector, and the same words said twice in a conversation are embedded once. The `embedders` table
holds each key's model name and dimension; a server that answers another size under the same name
has that key's vectors dropped, so vectors of two models are never compared. Vectors are float16:
ranking by cosine loses nothing measurable and the file is half the size. Processes on one machine
share the file (WAL); processes on other machines keep their own.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.files import private_file

SCHEMA = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS embedders (key TEXT PRIMARY KEY, model TEXT NOT NULL, dim INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    embedder TEXT NOT NULL, conversation TEXT NOT NULL, digest BLOB NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (embedder, conversation, digest)
) WITHOUT ROWID;
"""


def digest(text: str) -> bytes:
    """What identifies an embedded text: 12 bytes of its SHA-1."""
    return hashlib.sha1(text.encode("utf-8")).digest()[:12]


class VectorCache:
    """Turn vectors by (embedder key, conversation, text digest) in one SQLite file. Blocking, thread-safe."""

    def __init__(self, path: Path):
        self.path = path
        private_file(path)  # vectors say something of what was said; SQLite's -wal/-shm take this mode
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
        self._lock = threading.Lock()
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA:
                self._db.close()
                raise sqlite3.DatabaseError(f"{path}: vector cache schema {version} is newer than this bot's ({SCHEMA}); "
                                            "delete the file (it is only a cache)")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_TABLES)
            self._db.execute(f"PRAGMA user_version = {SCHEMA}")
            self._db.commit()

    def claim(self, key: str, model: str, dim: int) -> None:
        """Record the embedder's dimension; vectors kept under its key at another size are dropped."""
        with self._lock:
            row = self._db.execute("SELECT dim FROM embedders WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == dim:
                return
            self._db.execute("DELETE FROM vectors WHERE embedder = ?", (key,))
            self._db.execute("INSERT OR REPLACE INTO embedders (key, model, dim) VALUES (?, ?, ?)", (key, model, dim))
            self._db.commit()

    def dimension(self, key: str) -> int | None:
        """The dimension the embedder answered last, or None before its first vector."""
        with self._lock:
            row = self._db.execute("SELECT dim FROM embedders WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None else None

    def load(self, key: str, conversation: str) -> dict[bytes, np.ndarray]:
        """Every vector kept for the conversation under the embedder's key, by text digest."""
        dim = self.dimension(key)
        if dim is None:
            return {}
        with self._lock:
            rows = self._db.execute(
                "SELECT digest, vector FROM vectors WHERE embedder = ? AND conversation = ?", (key, conversation)
            ).fetchall()
        return {bytes(d): np.frombuffer(v, dtype=np.float16) for d, v in rows if len(v) == 2 * dim}

    def save(self, key: str, conversation: str, rows: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Keep vectors (one commit for the lot)."""
        data = [(key, conversation, d, np.asarray(v, dtype=np.float16).tobytes()) for d, v in rows]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", data)
            self._db.commit()

    def prune(self, key: str, conversation: str, keep: set[bytes]) -> int:
        """Drop the conversation's vectors whose text is no longer stored (a reset, the archive's bound)."""
        with self._lock:
            have = [bytes(d) for (d,) in self._db.execute(
                "SELECT digest FROM vectors WHERE embedder = ? AND conversation = ?", (key, conversation))]
            gone = [(key, conversation, d) for d in have if d not in keep]
            if gone:
                self._db.executemany("DELETE FROM vectors WHERE embedder = ? AND conversation = ? AND digest = ?", gone)
                self._db.commit()
        return len(gone)

    def count(self, key: str, conversation: str) -> int:
        """How many vectors are kept for the conversation under the embedder's key."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM vectors WHERE embedder = ? AND conversation = ?", (key, conversation)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
