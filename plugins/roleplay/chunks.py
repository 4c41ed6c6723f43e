"""Cutting a long reply into QQ-sized messages at natural boundaries."""

from __future__ import annotations

import re

# a piece ends after a line break, a run of sentence-ending punctuation, or ". " (separators stay on it)
_PIECE = re.compile(r".*?(?:\n\s*|[。！？!?…~～]+\s*|\.\s+|$)", re.S)


def _pieces(text: str, limit: int) -> list[str]:
    """Line- and sentence-sized pieces; any piece still over `limit` is cut hard."""
    out: list[str] = []
    for match in _PIECE.finditer(text):
        piece = match.group(0)
        while len(piece.strip()) > limit:
            out.append(piece[:limit])
            piece = piece[limit:]
        if piece:
            out.append(piece)
    return out


def split_text(text: str, limit: int) -> list[str]:
    """Greedily pack pieces into messages of at most `limit` characters (never an empty one)."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    out: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        if len((current + piece).strip()) <= limit:
            current += piece
            continue
        if current.strip():
            out.append(current.strip())
        current = piece
    if current.strip():
        out.append(current.strip())
    return out
