"""Cutting a novel into chapter-aware pieces for QA generation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory.knowledge.chapters import DEFAULT_PATTERN, split_chapters
from training.records import text_key

# sentence ends where a long paragraph may be cut (CJK and Latin)
_SENTENCE_END = re.compile(r"(?<=[。！？!?…」”』])|(?<=[.;])\s")


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of one chapter, small enough for one prompt."""

    chapter: int
    title: str
    text: str

    @property
    def key(self) -> str:
        """Stable id for resume: the hash of the chapter title and the text."""
        return text_key(f"{self.title}\n{self.text}")


def cut_pieces(text: str, size: int, chapter_pattern: str = "") -> list[Piece]:
    """Pieces of about `size` characters that never cross a chapter boundary; cut at paragraphs."""
    out: list[Piece] = []
    for section in split_chapters(text, chapter_pattern or DEFAULT_PATTERN):
        for part in _pack(_paragraphs(section.text, size), size):
            out.append(Piece(section.chapter, section.title, part))
    return out


def _paragraphs(text: str, size: int) -> list[str]:
    """Non-empty paragraphs; one longer than `size` is split at sentence ends (hard cut as a last resort)."""
    out: list[str] = []
    for para in (p.strip() for p in text.split("\n")):
        if not para:
            continue
        if len(para) <= size:
            out.append(para)
            continue
        for sentence in _pack([s for s in _SENTENCE_END.split(para) if s], size, joiner=""):
            out.extend(sentence[i : i + size] for i in range(0, len(sentence), size))
    return out


def _pack(parts: list[str], size: int, joiner: str = "\n") -> list[str]:
    """Greedily join parts while the result stays within `size`."""
    out: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current}{joiner}{part}" if current else part
        if current and len(candidate) > size:
            out.append(current)
            current = part
        else:
            current = candidate
    if current.strip():
        out.append(current)
    return out
