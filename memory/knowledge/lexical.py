"""The lexical index: BM25 (bm25s) over character bigrams or jieba words, with a chapter mask."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.text import _STOP

Encoder = Callable[[str], np.ndarray]
LEXICAL_SCHEMA = 2
_WORDY = re.compile(r"\w")
_OTHER = re.compile(r"[a-zA-Z0-9]+(?:'[a-z]+)?")
_STOP_CHARS = np.array(sorted(ord(c) for c in _STOP if len(c) == 1 and ord(c) > 0x3000), dtype=np.int64)
_WORD_BASE = np.int64(1) << 50  # above every CJK bigram code (< 2**37)


def word_code(word: str) -> int:
    """A stable 48-bit code for a word (the same in every process, unlike hash())."""
    return int(_WORD_BASE) | int.from_bytes(hashlib.blake2b(word.encode(), digest_size=6).digest(), "little")


def bigram_codes(text: str) -> np.ndarray:
    """The terms of core.text.lexical_tokens as integers, computed with numpy.

    CJK characters (minus stop characters) are their code points, bigrams inside CJK runs are
    (a << 21) | b, other words are hashed; 3 M characters take about a second.
    """
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    cjk = (
        ((cp >= 0x3400) & (cp <= 0x4DBF)) | ((cp >= 0x4E00) & (cp <= 0x9FFF))
        | ((cp >= 0xF900) & (cp <= 0xFAFF)) | ((cp >= 0x3040) & (cp <= 0x30FF))
    )
    uni = cp[cjk & ~np.isin(cp, _STOP_CHARS)]
    pair = cjk[:-1] & cjk[1:]
    bi = (cp[:-1][pair] << 21) | cp[1:][pair]
    words = [w.lower() for w in _OTHER.findall(text)]
    other = np.array([word_code(w) for w in words if w not in _STOP], dtype=np.int64)
    return np.concatenate([uni, bi, other])


def encoder(kind: str) -> Encoder:
    """`bigram`: CJK characters and bigrams (measured best on CMRC); `jieba`: jieba search words."""
    if kind == "jieba":
        import jieba

        jieba.setLogLevel(60)

        def words(text: str) -> np.ndarray:
            tokens = [w.lower() for w in jieba.lcut_for_search(text) if _WORDY.search(w)]
            return np.array([word_code(w) for w in tokens], dtype=np.int64)

        return words
    return bigram_codes


class LexicalIndex:
    """BM25 over a fixed list of documents, each with the chapter it belongs to."""

    def __init__(self, bm25: object | None, terms: np.ndarray, chapters: np.ndarray, kind: str):
        self.bm25 = bm25
        self.terms = terms  # sorted term codes; a term's position is its bm25s token id
        self.chapters = chapters
        self.kind = kind
        self.encode = encoder(kind)

    @classmethod
    def build(cls, texts: Sequence[str], chapters: Sequence[int], kind: str = "bigram") -> LexicalIndex:
        """Index these texts (an empty list gives an index that finds nothing)."""
        import bm25s

        encode = encoder(kind)
        codes = [encode(t) for t in texts]
        terms = np.zeros(0, dtype=np.int64)
        bm25 = None
        if texts:
            terms, ids = np.unique(np.concatenate([*codes, np.zeros(1, dtype=np.int64)]), return_inverse=True)
            # code 0 is a placeholder term so that an empty document still has a token
            bounds = np.cumsum([len(c) for c in codes])[:-1]
            # numpy arrays, not lists: a third less peak memory for bm25s to build from
            docs = [d if d.size else np.zeros(1, dtype=ids.dtype) for d in np.split(ids[:-1], bounds)]
            bm25 = bm25s.BM25()
            vocab = {str(code): n for n, code in enumerate(terms.tolist())}
            bm25.index(bm25s.tokenization.Tokenized(ids=docs, vocab=vocab), show_progress=False)
        return cls(bm25, terms, np.asarray(chapters, dtype=np.int32), kind)

    def __len__(self) -> int:
        return int(self.chapters.shape[0])

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document (zeros when no query word is indexed)."""
        if self.bm25 is None:
            return np.zeros(0, dtype=np.float32)
        codes = np.unique(self.encode(query))
        pos = np.searchsorted(self.terms, codes).clip(0, max(0, len(self.terms) - 1))
        ids = [int(p) for p, c in zip(pos, codes, strict=True) if c and self.terms[p] == c]
        if not ids:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self.bm25.get_scores_from_ids(ids))  # type: ignore[attr-defined]

    def search(self, query: str, k: int, max_chapter: int | None = None) -> list[tuple[int, float]]:
        """Best `k` (index, score) pairs with a positive score, within the spoiler limit."""
        scores = self.scores(query)
        if scores.size == 0 or k <= 0:
            return []
        if max_chapter is not None:
            scores = np.where(self.chapters <= max_chapter, scores, 0.0)
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, folder: Path, stamp: str) -> None:
        """Write the index; `stamp` ties it to the catalog generation it was built from."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.bm25 is not None:
            self.bm25.save(str(folder / "bm25"), show_progress=False)  # type: ignore[attr-defined]
        np.save(folder / "chapters.npy", self.chapters)
        np.save(folder / "terms.npy", self.terms)
        meta = {"schema": LEXICAL_SCHEMA, "stamp": stamp, "kind": self.kind, "empty": self.bm25 is None}
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        tmp.replace(folder / "meta.json")  # last, so a half-written index is never taken as whole

    @classmethod
    def load(cls, folder: Path, stamp: str, kind: str) -> LexicalIndex | None:
        """The saved index if it matches `stamp` and `kind`, else None (rebuild it)."""
        import bm25s

        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("schema") != LEXICAL_SCHEMA or meta.get("stamp") != stamp or meta.get("kind") != kind:
            return None
        chapters = np.load(folder / "chapters.npy")
        terms = np.load(folder / "terms.npy")
        bm25 = None if meta.get("empty") else bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        return cls(bm25, terms, chapters, kind)
