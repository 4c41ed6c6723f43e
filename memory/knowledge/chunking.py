"""Chunks: pieces of one chapter, cut at sentences and paragraphs, never inside short dialogue."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from memory.knowledge.chapters import Section

_ENDS = frozenset("。！？!?…；;")
_OPEN = frozenset("“「『‘(（")
_CLOSE = frozenset("”」』’)）")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a source: id is a hash of its source, chapter and text."""

    id: str
    source: str
    chapter: int
    title: str
    start: int
    end: int
    text: str
    doc: str = ""


def units(text: str, limit: int) -> list[tuple[int, int]]:
    """(start, end) of sentences; a quotation stays whole unless it alone passes `limit`."""
    out: list[tuple[int, int]] = []
    start, depth, i, n = 0, 0, 0, len(text)
    while i < n:
        c = text[i]
        cut = False
        if c == "\n":
            cut, depth = True, 0  # a paragraph closes any quotation left open
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
            cut = depth == 0 and i > 0 and text[i - 1] in _ENDS
        elif c in _ENDS and depth == 0:
            while i + 1 < n and (text[i + 1] in _ENDS or text[i + 1] in _CLOSE):
                i += 1
            cut = True
        if not cut and i + 1 - start >= limit:
            cut = True  # an overlong sentence or quotation is cut hard
        if cut:
            if text[start : i + 1].strip():
                out.append((start, i + 1))
            start = i + 1
        i += 1
    if text[start:].strip():
        out.append((start, n))
    return out


def chunk_section(section: Section, source: str, size: int, overlap: int) -> list[Chunk]:
    """Pack sentences into chunks of up to `size` characters, repeating up to `overlap`.

    A record from a .jsonl file is a passage already: it stays whole up to twice `size`.
    """
    if section.doc and len(section.text.strip()) <= 2 * size:
        text = section.text.strip()
        return [_chunk(section, source, 0, len(section.text), text)] if text else []
    spans = units(section.text, size)
    out: list[Chunk] = []
    i = 0
    while i < len(spans):
        j = i
        while j + 1 < len(spans) and spans[j + 1][1] - spans[i][0] <= size:
            j += 1
        a, b = spans[i][0], spans[j][1]
        text = section.text[a:b].strip()
        if text:
            out.append(_chunk(section, source, a, b, text))
        if j + 1 >= len(spans):
            break
        k = j + 1
        # step back over whole sentences that fit the overlap, but always move forward
        while k - 1 > i and spans[j][1] - spans[k - 1][0] <= overlap:
            k -= 1
        i = k
    return out


def chunk_sections(sections: list[Section], source: str, size: int, overlap: int) -> list[Chunk]:
    """Every chapter's chunks; duplicate texts within a source get distinct ids."""
    out: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in sections:
        for chunk in chunk_section(section, source, size, overlap):
            n = seen.get(chunk.id, 0)
            seen[chunk.id] = n + 1
            if n:
                chunk = Chunk(f"{chunk.id}-{n}", *_fields(chunk))
            out.append(chunk)
    return out


def _chunk(section: Section, source: str, a: int, b: int, text: str) -> Chunk:
    digest = hashlib.sha1(f"{source}\x00{section.doc}\x00{section.chapter}\x00{text}".encode()).hexdigest()[:24]
    return Chunk(digest, source, section.chapter, section.title, section.start + a, section.start + b, text, section.doc)


def _fields(c: Chunk) -> tuple[str, int, str, int, int, str, str]:
    return c.source, c.chapter, c.title, c.start, c.end, c.text, c.doc
