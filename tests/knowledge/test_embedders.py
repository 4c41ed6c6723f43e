"""Embedders: a real /v1/embeddings server, one that misbehaves, the config that picks one, and `doctor`."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError, KnowledgeConfig, load_config
from memory.knowledge.base import DENSE_RETRY_SECONDS, KnowledgeBase
from memory.knowledge.embedders import HttpEmbedder, LocalEmbedder, open_embedder
from memory.knowledge.embedding import MINILM, EmbeddingError
from memory.knowledge.index import Layout
from memory.knowledge.vectors import collection_name, open_client
from tests.conftest import ROOT, MakeSettings
from tests.knowledge.conftest import SERVER_MODEL, needs_sentence_transformers
from tests.knowledge.test_ingest import STORY, story
from tests.knowledge.test_lookup import ingest, wukong
from tests.real_model.llama import LlamaServer
from tests.support.cli import run_bot
from tests.support.embeddings_server import EmbeddingsServer

SECRET = "sk-embed-secret-123"


def letters(text: str) -> list[float]:
    """A crude but real embedding: how often each letter occurs (plus one, never zero)."""
    return [1.0 + text.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"]


@pytest.fixture
def stub() -> Iterator[EmbeddingsServer]:
    s = EmbeddingsServer(letters)
    yield s
    s.close()


def test_real_server_gives_unit_vectors_in_order(embedding_server: LlamaServer) -> None:
    texts = [STORY[1], "孙悟空大闹天宫", STORY[3]]
    batched = HttpEmbedder(embedding_server.base_url, SERVER_MODEL, timeout=60.0)
    one_by_one = HttpEmbedder(embedding_server.base_url, SERVER_MODEL, timeout=60.0)
    try:
        assert not batched.loaded
        vectors = batched.encode(texts, batch_size=3)
        assert batched.loaded and len(vectors) == 3 and len({len(v) for v in vectors}) == 1
        assert all(abs(np.linalg.norm(v) - 1.0) < 1e-4 for v in vectors)
        # llama.cpp answers one vector per token for this model: pooled here, the same batched or not
        singles = [one_by_one.encode([t])[0] for t in texts]
        assert np.allclose(vectors, singles, atol=1e-5)
        assert np.dot(vectors[0], vectors[2]) < 0.9999  # different texts, different vectors
    finally:
        batched.close()
        one_by_one.close()


def test_keys_follow_server_and_model() -> None:
    a, slash, b, c = (HttpEmbedder("http://h:1/v1", "bge-m3"), HttpEmbedder("http://h:1/v1/", "bge-m3"),
                      HttpEmbedder("http://h:1/v1", "text2vec"), HttpEmbedder("http://h:2/v1", "bge-m3"))
    assert a.key == slash.key and len({a.key, b.key, c.key}) == 3 and a.key.startswith("bge-m3-")
    # the packaged MiniLM keeps the collection name it always had, so old indexes stay usable
    old = "all-minilm-l6-v2-" + hashlib.sha1(b"all-MiniLM-L6-v2").hexdigest()[:8]
    assert LocalEmbedder(MINILM).key == old and LocalEmbedder(MINILM).is_default
    assert LocalEmbedder("/models/bge-small-zh-v1.5").key not in (old, a.key)
    for e in (a, b, c):
        assert re.fullmatch(r"[a-zA-Z0-9._-]{3,512}", collection_name("wukong", e.key))
        e.close()


def test_server_faults_are_one_line_errors_without_the_key(stub: EmbeddingsServer) -> None:
    e = HttpEmbedder(stub.url, "bge-m3", SECRET, timeout=0.5)
    assert e.encode(["abc", "b"]) and stub.requests[-1] == ({"model": "bge-m3", "input": ["abc", "b"]}, f"Bearer {SECRET}")
    faults = [
        (500, '{"error": "Unsupported"}', "HTTP 500: {\"error\": \"Unsupported\"}"),  # lmdeploy's TurboMind
        (200, "not json", "not an embeddings response"),
        (200, json.dumps({"data": [{"embedding": [1.0]}]}), "1 vectors of mixed or zero size for 2 texts"),
    ]
    for status, body, message in faults:
        stub.status, stub.body = status, body
        with pytest.raises(EmbeddingError) as err:
            e.encode(["abc", "b"])
        assert message in str(err.value) and SECRET not in str(err.value) and "\n" not in str(err.value)
    stub.status, stub.body, stub.delay = 200, None, 1.5
    with pytest.raises(EmbeddingError, match=re.escape("no answer within 0.5 s")):
        e.encode(["abc"])
    e.close()
    closed = HttpEmbedder("http://127.0.0.1:9/v1", "bge-m3")
    with pytest.raises(EmbeddingError, match=re.escape("embedding server http://127.0.0.1:9/v1: ConnectError")):
        closed.encode(["abc"])
    closed.close()


async def test_lookup_uses_bm25_while_the_server_is_down(
    tmp_path: Path, stub: EmbeddingsServer, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "kb"
    embedder = HttpEmbedder(stub.url, "letters")
    ingest(root, [story(tmp_path)], embedder)
    now = [1000.0]
    kb = KnowledgeBase(KnowledgeConfig(mode="hybrid", top_k=1), root, embedder, clock=lambda: now[0])
    assert (await kb.lookup(wukong(), "peaches of immortality", [], None)).passages
    stub.status, stub.body = 500, "Unsupported"
    asked = len(stub.requests)
    with caplog.at_level(logging.WARNING):
        found = await kb.lookup(wukong(), "peaches of immortality", [], None)
    assert found.passages and "peaches" in found.passages[0].text  # BM25 answered
    assert len(stub.requests) == asked + 1 and "dense retrieval failed" in caplog.text and "Unsupported" in caplog.text
    now[0] += DENSE_RETRY_SECONDS / 2
    assert (await kb.lookup(wukong(), "peaches of immortality", [], None)).passages
    assert len(stub.requests) == asked + 1  # not asked again while it is down
    stub.status, stub.body = 200, None
    now[0] += DENSE_RETRY_SECONDS
    assert (await kb.lookup(wukong(), "peaches of immortality", [], None)).passages
    assert len(stub.requests) == asked + 2
    await kb.close()
    embedder.close()


async def test_an_index_is_never_queried_with_another_embedder(tmp_path: Path, stub: EmbeddingsServer) -> None:
    root = tmp_path / "kb"
    built, other = HttpEmbedder(stub.url, "model-a"), HttpEmbedder(stub.url, "model-b")
    ingest(root, [story(tmp_path)], built)
    kb = KnowledgeBase(KnowledgeConfig(mode="dense", top_k=2), root, other)
    asked = len(stub.requests)
    assert (await kb.lookup(wukong(), "peaches", [], None)).passages == ()  # model-b has no vectors here
    assert len(stub.requests) == asked  # and is not even asked to embed the query
    await kb.close()
    client = open_client("", Layout(root, "wukong").chroma)
    counts = {c.name: c.count() for c in client.list_collections()}
    assert counts[collection_name("wukong", built.key)] == 3 and counts.get(collection_name("wukong", other.key), 0) == 0
    client.close()
    ingest(root, [story(tmp_path)], other)  # after its own ingest it answers from its own collection
    kb = KnowledgeBase(KnowledgeConfig(mode="dense", top_k=2), root, other)
    assert (await kb.lookup(wukong(), "peaches", [], None)).passages
    assert all(p[0]["model"] == "model-b" for p in stub.requests[asked:])
    await kb.close()
    built.close()
    other.close()


def test_config_names_the_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"

    def load(body: str) -> KnowledgeConfig:
        path.write_text(f"[knowledge]\n{body}\n", encoding="utf-8")
        return load_config(path).knowledge

    assert open_embedder(load("")) is None
    server = open_embedder(load('embedding_url = "http://127.0.0.1:8080/v1"\nembedding_model = "bge-m3"'))
    assert isinstance(server, HttpEmbedder) and server.name == "bge-m3"
    server.close()
    local = open_embedder(load(f'embedding_path = "{MINILM}"'))
    assert isinstance(local, LocalEmbedder) and local.is_default and not local.loaded
    wrong = {
        'embedding_model = "/models/bge"': r"\[knowledge\] embedding_model: names the model served at embedding_url.*embedding_path",
        'embedding_url = "http://127.0.0.1:8080/v1"': r"\[knowledge\] embedding_model: required with embedding_url",
        'embedding_url = "127.0.0.1:8080"\nembedding_model = "m"': r"\[knowledge\] embedding_url: not an http\(s\) URL",
        'embedding_url = "http://h/v1"\nembedding_model = "m"\nembedding_path = "/m"': r"\[knowledge\] embedding_path: .*not both",
    }
    for body, message in wrong.items():
        with pytest.raises(ConfigError, match=message):
            load(body)
    monkeypatch.setenv("BOT_KNOWLEDGE__EMBEDDING_API_KEY", SECRET)
    path.write_text('[knowledge]\nembedding_url = "http://h/v1"\nembedding_model = "m"\n', encoding="utf-8")
    settings = load_config(path)
    assert settings.knowledge.embedding_api_key.get_secret_value() == SECRET
    assert SECRET in settings.secrets() and SECRET not in repr(settings.knowledge)


async def test_doctor_reports_the_embedder(make_settings: MakeSettings, stub: EmbeddingsServer, embedding_server: LlamaServer) -> None:
    from memory.knowledge import knowledge_check

    up = make_settings(knowledge={"enabled": True, "embedding_url": embedding_server.base_url, "embedding_model": SERVER_MODEL})
    ok, detail, _ = await knowledge_check(up)
    assert ok and re.search(rf"{SERVER_MODEL} at {re.escape(embedding_server.base_url)} \(\d+ dimensions\)", detail)
    stub.status, stub.body = 500, "Unsupported"
    down = make_settings(knowledge={"enabled": True, "embedding_url": stub.url, "embedding_model": "m"})
    ok, detail, fix = await knowledge_check(down)
    assert not ok and "HTTP 500: Unsupported" in detail and "TurboMind" in fix


def test_ingest_command_with_a_server_and_without_an_embedder(
    tmp_path: Path, stub: EmbeddingsServer, embedding_server: LlamaServer
) -> None:
    def work(**knowledge: str) -> Path:
        lines = [f'[bot]\ndata_dir = "{tmp_path / "data"}"', f'[personas]\ndirs = ["{ROOT / "persona"}"]',
                 '[memory]\nbackend = "sqlite"', "[knowledge]"]
        (tmp_path / "config.toml").write_text("\n".join(lines + [f'{k} = "{v}"' for k, v in knowledge.items()]) + "\n")
        return tmp_path

    path = story(tmp_path)
    plain = run_bot(["ingest", "--persona", "wukong", "--quiet", str(path)], work())
    assert plain.returncode == 0 and "embedded: 0" in plain.stdout
    assert "note: no embedder configured, so BM25 only" in plain.stderr and "embedding_url" in plain.stderr
    dense = run_bot(["ingest", "--persona", "wukong", "--mode", "dense", str(path)], work())
    assert dense.returncode == 2 and "error: mode dense needs an embedder" in dense.stderr
    served = run_bot(["ingest", "--persona", "wukong", "--quiet", str(path)],
                     work(embedding_url=embedding_server.base_url, embedding_model=SERVER_MODEL))
    assert served.returncode == 0, served.stderr
    assert "embedded: 3" in served.stdout and "note:" not in served.stderr
    stub.status, stub.body = 500, "Unsupported"
    story(tmp_path, {**STORY, 4: "Another chapter."})
    failed = run_bot(["ingest", "--persona", "wukong", "--quiet", str(path)],
                     work(embedding_url=stub.url, embedding_model="m"), env={"BOT_KNOWLEDGE__EMBEDDING_API_KEY": SECRET})
    assert failed.returncode == 1 and "HTTP 500: Unsupported" in failed.stderr and "run ingest again" in failed.stderr
    assert "Traceback" not in failed.stderr and SECRET not in failed.stderr + failed.stdout


def test_local_model_without_the_extra_says_what_to_install() -> None:
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("sentence-transformers is installed here")
    with pytest.raises(EmbeddingError, match=re.escape("pip install -r requirements-embed.txt")):
        LocalEmbedder(MINILM).encode(["abc"])


@pytest.mark.embed
async def test_local_minilm_in_doctor_and_a_missing_folder(make_settings: MakeSettings) -> None:
    from memory.knowledge import knowledge_check

    needs_sentence_transformers()
    ok, detail, _ = await knowledge_check(make_settings(knowledge={"enabled": True, "embedding_path": MINILM}))
    assert ok and "all-MiniLM-L6-v2 (packaged, in process)" in detail
    with pytest.raises(EmbeddingError, match="not a local model folder"):
        LocalEmbedder("/nowhere/model").encode(["abc"])
