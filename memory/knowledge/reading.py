"""Reading sources: .txt (UTF-8 / GB18030 / UTF-16), .epub and .jsonl into chapter sections."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from core.text import decode_text
from memory.knowledge.chapters import Section, split_chapters

SUFFIXES = (".txt", ".md", ".epub", ".jsonl")


class SourceError(Exception):
    """A file that cannot be read as a source."""


@dataclass(frozen=True, slots=True)
class Source:
    """One file to ingest: its key (resolved path), display name, content hash and sections."""

    key: str
    name: str
    sha: str
    sections: list[Section]


def file_hash(path: Path) -> str:
    """The content hash that tells whether a file changed since the last ingest."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def normalize(text: str) -> str:
    """Unix line ends, paragraphs stripped, blank lines dropped."""
    lines = (line.strip().replace("\u3000", " ").strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def read_source(path: Path, pattern: str = "", sha: str | None = None) -> Source:
    """Read one file into sections; chapters are found in .txt and .epub text."""
    suffix = path.suffix.lower()
    sha = sha or file_hash(path)
    key, name = str(path.resolve()), path.stem
    if suffix == ".jsonl":
        return Source(key, name, sha, _jsonl(path))
    if suffix == ".epub":
        text = _epub(path)
    elif suffix in (".txt", ".md"):
        text = normalize(decode_text(path.read_bytes()))
    else:
        raise SourceError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)})")
    return Source(key, name, sha, split_chapters(text, pattern))


def expand(paths: list[Path]) -> list[Path]:
    """Files named, and the readable files inside folders named, in a stable order."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise SourceError(f"{p}: no such file or folder")
    return list(dict.fromkeys(out))


def _jsonl(path: Path) -> list[Section]:
    out: list[Section] = []
    for n, line in enumerate(decode_text(path.read_bytes()).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            text = str(rec["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"{path}:{n}: expected {{\"id\", \"text\"}} ({exc})") from exc
        chapter = rec.get("chapter", 0)
        out.append(Section(
            chapter if isinstance(chapter, int) else 0,
            str(rec.get("title", "")),
            normalize(text),
            0,
            str(rec.get("id", n)),
        ))
    return out


class _Text(HTMLParser):
    """Visible text of an XHTML page, one block element a line."""

    BLOCKS = frozenset(["p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "section"])

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _epub(path: Path) -> str:
    import ebooklib
    from ebooklib import epub

    try:
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
    except Exception as exc:  # ebooklib raises many kinds for a broken archive
        raise SourceError(f"{path}: not a readable EPUB ({exc})") from exc
    pages: list[str] = []
    for item_id, _ in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        parser = _Text()
        parser.feed(item.get_content().decode("utf-8", errors="replace"))
        pages.append(normalize("".join(parser.parts)))
    return "\n".join(p for p in pages if p)
