"""The clip cache on disk: one file per (engine, speaker, text, params, format), bounded in size."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from core.files import private_dir

log = logging.getLogger(__name__)

CACHE_VERSION = "v1"


def clip_key(engine: str, speaker: str, text: str, params: dict[str, object], fmt: str) -> str:
    """A content hash of everything that decides the clip's bytes."""
    blob = json.dumps([CACHE_VERSION, engine, speaker, text, params, fmt], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ClipCache:
    """Files under `folder/v1/`; least recently used ones go when the total passes `max_bytes`."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder = folder / CACHE_VERSION
        self.max_bytes = max_bytes

    @property
    def enabled(self) -> bool:
        """A zero size turns the cache off."""
        return self.max_bytes > 0

    def _path(self, key: str, fmt: str) -> Path:
        return self.folder / f"{key}.{fmt}"

    def get(self, key: str, fmt: str) -> bytes | None:
        """The cached clip, marking it recently used; None on a miss."""
        if not self.enabled:
            return None
        path = self._path(key, fmt)
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            return None
        return data

    def put(self, key: str, fmt: str, data: bytes) -> None:
        """Store a clip atomically, then trim the cache; disk trouble only costs the cache."""
        if not self.enabled or len(data) > self.max_bytes:
            return
        try:
            private_dir(self.folder)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._path(key, fmt))
            self.trim()
        except OSError as exc:
            log.warning("voice cache %s: %s", self.folder, exc)

    def size(self) -> int:
        """Bytes held now."""
        return sum(p.stat().st_size for p in self._files())

    def trim(self) -> None:
        """Drop the least recently used clips until the total fits (one stat per file)."""
        stats = []
        for path in self._files():
            try:
                stats.append((path.stat(), path))
            except OSError:
                continue  # removed meanwhile by another process
        total = sum(st.st_size for st, _ in stats)
        for st, path in sorted(stats, key=lambda item: item[0].st_mtime):
            if total <= self.max_bytes:
                break
            total -= st.st_size
            path.unlink(missing_ok=True)

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return [p for p in self.folder.iterdir() if p.is_file() and not p.name.endswith(".tmp")]
