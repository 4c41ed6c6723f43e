"""Knowledge fixtures: chapters cut from the shared 西游记 at test time, and the embedders.

`embedder` runs each dense test twice: against a real OpenAI-compatible embeddings server
(llama.cpp's, from .venv-llm) and with sentence-transformers in process (the packaged MiniLM, only
in .venv-embed: `bash .ci/embed.sh` runs the tests marked `embed` there).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memory.knowledge.embedders import HttpEmbedder, LocalEmbedder
from memory.knowledge.embedding import MINILM, Embedder
from tests.conftest import SHARED
from tests.real_model.conftest import embedding_server  # noqa: F401 - the fixture, for these tests too
from tests.real_model.llama import LlamaServer

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


SERVER_MODEL = "smollm2"
LOCAL_REASON = "sentence-transformers is not installed here; `bash .ci/embed.sh` runs these in .venv-embed"


def needs_sentence_transformers() -> None:
    """Skip where the optional extra (requirements-embed.txt) is not installed."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip(LOCAL_REASON)


@pytest.fixture(scope="session")
def server_embedder(embedding_server: LlamaServer) -> Iterator[HttpEmbedder]:  # noqa: F811
    """An HttpEmbedder on the real llama.cpp embeddings server."""
    e = HttpEmbedder(embedding_server.base_url, SERVER_MODEL, timeout=60.0)
    e.warm()
    yield e
    e.close()


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    """The packaged MiniLM in process, loaded once for the session."""
    needs_sentence_transformers()
    e = LocalEmbedder(MINILM)
    e.warm()
    return e


@pytest.fixture(scope="session", params=["server", pytest.param("local", marks=pytest.mark.embed)])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    """Each embedder kind in turn: the real embeddings server, then sentence-transformers in process."""
    fixture = "server_embedder" if request.param == "server" else "local_embedder"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def chapter_of(path: Path, n: int) -> str:
    """Helper for assertions: the raw text of chapter n of a written fixture (1-based)."""
    return cut_chapters(n, n)
