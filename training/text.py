"""Reading novel files and cutting plain text into overlapping chunks (pretraining)."""

from __future__ import annotations


def read_text(raw: bytes) -> str:
    """Decode a novel file: UTF-8 (with or without BOM), else GB18030 (common for Chinese novels)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding).replace("\r\n", "\n")
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n")

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
