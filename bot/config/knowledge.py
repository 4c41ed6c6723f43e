"""[knowledge]: the source-work index (Chroma + BM25) and the recall budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.core import Section


class KnowledgeConfig(Section):
    """[knowledge]: retrieval over the character's source work."""

    enabled: bool = True
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    embedding_model: str = ""
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
