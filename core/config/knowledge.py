"""[knowledge]: the source-work index (Chroma + BM25) and the recall budget."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from core.config.core import Section


class KnowledgeConfig(Section):
    """[knowledge]: retrieval over the character's source work."""

    enabled: bool = True
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    embedding_url: str = ""
    embedding_model: str = ""
    embedding_api_key: SecretStr = SecretStr("")
    embedding_path: str = ""
    embedding_timeout: float = Field(10.0, gt=0.0)
    chroma_url: str = ""
    tokenizer: Literal["bigram", "jieba"] = "bigram"
    chunk_chars: int = Field(600, ge=100)
    chunk_overlap: int = Field(80, ge=0)
    chapter_pattern: str = ""
    top_k: int = Field(4, ge=0)
    scenes_k: int = Field(3, ge=0)
    dense_weight: float | Literal["auto"] = "auto"
    rrf_k: int = Field(10, ge=1)
    passage_tokens: int = Field(900, ge=0)
    lore_tokens: int = Field(400, ge=0)
    scan_depth: int = Field(4, ge=1)
    reranker_model: str = ""
    embed_batch: int = Field(32, ge=1)
    max_chapter: dict[str, int] = Field(default_factory=dict)

    @field_validator("embedding_url")
    @classmethod
    def _embedding_url(cls, value: str) -> str:
        if value and (urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc):
            raise ValueError("not an http(s) URL; write it like http://127.0.0.1:8080/v1")
        return value

    @field_validator("embedding_model")
    @classmethod
    def _embedding_model(cls, value: str, info: ValidationInfo) -> str:
        if "embedding_url" not in info.data:  # the URL itself failed; that error says enough
            return value
        url = info.data["embedding_url"]
        if url and not value:
            raise ValueError("required with embedding_url: the name of the model that server serves (e.g. bge-m3)")
        if value and not url:
            raise ValueError("names the model served at embedding_url, which is empty; "
                             "for a local sentence-transformers folder set embedding_path instead")
        return value

    @field_validator("embedding_path")
    @classmethod
    def _embedding_path(cls, value: str, info: ValidationInfo) -> str:
        if value and info.data.get("embedding_url"):
            raise ValueError("set embedding_url (a server) or embedding_path (a local model), not both")
        return value
