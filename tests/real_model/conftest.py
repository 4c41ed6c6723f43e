"""The real-model tier: llama.cpp's server with SmolLM2-135M-Instruct (see requirements-llm.txt).

`make test` builds .venv-llm and points BOT_TEST_LLM_PYTHON at it, so these tests always run
there; run alone without that environment they are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.real_model.llama import LlamaServer, find_gguf

_PYTHON = os.environ.get("BOT_TEST_LLM_PYTHON", "")


def _interpreter() -> Path:
    if _PYTHON:
        path = Path(_PYTHON) if Path(_PYTHON).is_absolute() else ROOT / _PYTHON
        if not path.exists():
            pytest.fail(f"BOT_TEST_LLM_PYTHON={_PYTHON} does not exist; run `bash .ci/llm.sh`")
        return path
    local = ROOT / ".venv-llm" / "bin" / "python"
    if not local.exists():
        pytest.skip("no .venv-llm: run `bash .ci/llm.sh` (make test does)")
    return local


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], LlamaServer]]:
    """`llama(n_ctx)`: a server with that context size, started once per size for the session."""
    python = _interpreter()
    model = find_gguf(python)
    servers: dict[int, LlamaServer] = {}

    def get(n_ctx: int) -> LlamaServer:
        if n_ctx not in servers:
            log = tmp_path_factory.mktemp("llama") / f"server-{n_ctx}.log"
            servers[n_ctx] = LlamaServer(python, model, n_ctx, log).start()
        return servers[n_ctx]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The same server in embedding mode (`--embedding true`): OpenAI's /v1/embeddings, one vector per token."""
    python = _interpreter()
    log = tmp_path_factory.mktemp("llama") / "embedding-server.log"
    server = LlamaServer(python, find_gguf(python), 2048, log, extra_args=("--embedding", "true")).start()
    yield server
    server.stop()
