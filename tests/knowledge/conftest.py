"""Knowledge fixtures: chapters cut from the shared 西游记 at test time, a shared MiniLM embedder."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from memory.knowledge.embedding import Embedder
from tests.conftest import SHARED

XIYOUJI = SHARED / "corpora" / "xiyouji.txt"
WUKONG_NAMES = ["孙悟空", "悟空", "行者", "孙行者", "美猴王", "齐天大圣", "大圣", "猴王"]


def cut_chapters(first: int, last: int) -> str:
    """Chapters first..last (1-based) of the shared 西游记, headings included."""
    text = XIYOUJI.read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"^第[一二三四五六七八九十百零〇]+回", text, re.M)]
    end = starts[last] if last < len(starts) else len(text)
    return text[starts[first - 1] : end]


@pytest.fixture
def novel(tmp_path: Path) -> Callable[..., Path]:
    """Write chapters of 西游记 into a file: `novel(1, 3, name="xiyou.txt", encoding="utf-8")`."""

    def write(first: int, last: int, name: str = "xiyou.txt", encoding: str = "utf-8") -> Path:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cut_chapters(first, last).encode(encoding))
        return path

    return write


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged MiniLM, loaded once for the session."""
    e = Embedder("")
    e.model()
    return e


def chapter_of(path: Path, n: int) -> str:
    """Helper for assertions: the raw text of chapter n of a written fixture (1-based)."""
    return cut_chapters(n, n)
