"""Reading novel files and cutting plain text into overlapping chunks (pretraining)."""

from __future__ import annotations

from core.text import decode_text


def read_text(raw: bytes) -> str:
    """Decode a novel file as ingest does (BOMs, UTF-16, UTF-8, then GB18030) with Unix line ends."""
    return decode_text(raw).replace("\r\n", "\n").replace("\r", "\n")

def chunks(text: str, size: int, overlap: int) -> list[str]:
    """Fixed-size windows of `size` characters, each starting `size - overlap` after the previous."""
    text = "\n".join(line.strip() for line in text.splitlines() if line.strip())
    if not text:
        return []
    step = max(1, size - min(overlap, size - 1))
    out = []
    for start in range(0, len(text), step):
        out.append(text[start : start + size])
        if start + size >= len(text):
            break
    return out
