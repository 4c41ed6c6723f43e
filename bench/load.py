"""Shared parts of the load benchmarks: the 西游记 index, the scripted model, the config, the numbers."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis
import tomli_w

from core.serving import ServerProfile
from memory.knowledge.index import Layout
from memory.knowledge.ingest import Ingestor
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import is_background
from tests.support.shared_data import shared_dir

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
XIYOUJI = shared_dir() / "corpora" / "xiyouji.txt"
QUESTIONS = ROOT / "bench" / "data" / "xiyouji_questions.jsonl"
NAMES = ["孙悟空", "悟空", "行者", "孙行者", "美猴王", "齐天大圣", "大圣", "猴王"]
MARK = re.compile(r"\[g(\d+) #(\d+)\]")
ECHO = re.compile(r"第([0-9、]+)句")  # how the scripted model names the messages it answers
SUMMARY = "众人在群里轮番向孙悟空打听取经路上的旧事，他一一作答，还夸口自己的本事。"
FACTS = '["爱听西游记的故事"]'


def mark(group: int, seq: int) -> str:
    """The tag a message carries: its group and its sequence number (the model echoes the number)."""
    return f"[g{group} #{seq}]"


@functools.cache
def _questions() -> list[str]:
    return [json.loads(line)["query"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def question(seq: int) -> str:
    """A reader's question about 西游记 (bench/data), the same one for the same number."""
    return _questions()[seq % len(_questions())]


def ingest(data_dir: Path) -> int:
    """Index 西游记 (BM25) for wukong under data_dir/knowledge, as `bot ingest` would; the chunks."""
    if not XIYOUJI.is_file():
        raise SystemExit(f"error: {XIYOUJI} not found; set BOT_SHARED_DIR to the folder holding corpora/")
    layout = Layout(data_dir / "knowledge", "wukong")
    return Ingestor(layout, NAMES, progress=False, embed=False).run([XIYOUJI]).chunks


def seqs_in(text: str) -> list[int]:
    """The sequence numbers tagged in a message's text."""
    return [int(m.group(2)) for m in MARK.finditer(text)]


def echoed(reply: str) -> list[int]:
    """The sequence numbers a scripted reply names (none in a fallback line)."""
    found = ECHO.search(reply)
    return [int(n) for n in found.group(1).split("、") if n] if found else []


class Responder:
    """The scripted model: each reply takes `latency_ms` and names the numbers of the messages it answers."""

    def __init__(self, latency_ms: float):
        self.latency = latency_ms / 1000

    def __call__(self, body: dict[str, Any]) -> Script:
        """A Script for this request (background jobs get a valid summary or fact list)."""
        first = str(body["messages"][0]["content"])
        if is_background(body):
            text = FACTS if first.startswith("从下面") else SUMMARY
            return Script(text=text, delay=self.latency)
        last = next((str(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user"), "")
        numbers = "、".join(str(n) for n in seqs_in(last)) or "?"
        text = f"俺老孙听见了，第{numbers}句。这事好办，你且看俺的手段！"
        # a third of the time to the first token, the rest spread over the stream's chunks
        chunks = len(text) // 4 + 3
        return Script(text=text, delay=self.latency / 3, chunk_delay=self.latency * 2 / 3 / chunks, chunk_size=4)


class ModelProcess:
    """The scripted model server in a process of its own, as a real one would be: its work is not the bot's."""

    def __init__(self, latency_ms: float, responder: type[Responder] = Responder):
        self.latency_ms = latency_ms
        self.responder = responder  # the scripted replies (a class, so it crosses into the process)
        self.base_url = ""
        self._conn: Connection | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> ModelProcess:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_model, args=(self.latency_ms, child, self.responder), name="model", daemon=True)
        self._proc.start()
        self.base_url = self._conn.recv()
        return self

    def _ask(self, what: str) -> Any:
        assert self._conn is not None
        self._conn.send(what)
        return self._conn.recv()

    def clear(self) -> None:
        """Forget the requests received so far."""
        self._ask("clear")

    def requests(self) -> list[dict[str, Any]]:
        """The chat request bodies received since the last `clear`, in order."""
        return list(self._ask("requests"))

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None and self._proc is not None:
            self._conn.send("stop")
            self._proc.join(timeout=10)
            self._conn.close()


def _serve_model(latency_ms: float, conn: Connection, responder: type[Responder] = Responder) -> None:
    with FakeOpenAI() as srv:
        srv.responder = responder(latency_ms)
        conn.send(srv.base_url)
        while (what := conn.recv()) != "stop":
            if what == "clear":
                srv.clear()
            conn.send(list(srv.requests) if what == "requests" else None)


def prompt_text(body: dict[str, Any]) -> str:
    """A request's messages as a ChatML template lays them out for the server, generation prompt included.

    Every message ends with its end marker, so a message that grew (or a system note that took
    the place of a user turn) stops the shared prefix where the server's cache would stop.
    """
    rendered = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in body["messages"])
    return rendered + "<|im_start|>assistant\n"


def conversation_of(body: dict[str, Any]) -> str:
    """The group a reply request belongs to (from the tag in its newest user message)."""
    last = next((str(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user"), "")
    found = MARK.search(last)
    return found.group(1) if found else "?"


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two texts."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def prefix_reuse(requests: list[dict[str, Any]]) -> float:
    """Share of prompt tokens that repeat the start of the same conversation's previous prompt.

    What a server's prefix cache can reuse: prompts rendered as the chat template renders them,
    counted in tokens (the bot's own estimate, as the server's tokenizer would count), compared
    from the first byte. Reply requests only; each conversation's first prompt has nothing
    before it and is left out."""
    count = ServerProfile().count
    last: dict[str, str] = {}
    shared = total = 0
    for body in requests:
        if is_background(body):
            continue
        key, text = conversation_of(body), prompt_text(body)
        before = last.get(key)
        last[key] = text
        if before is None:
            continue
        total += count(text)
        shared += count(text[: common_prefix(before, text)])
    return shared / total if total else 0.0


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ideal(rate: float, streams: int, concurrency: int, latency_ms: float) -> float:
    """Replies per second the model allows: min(offered rate, concurrency / latency)."""
    capacity = min(streams, concurrency) / (latency_ms / 1000) if latency_ms > 0 else float("inf")
    return min(rate, capacity) if rate > 0 else capacity


def write_config(folder: Path, base_url: str, prefix: str, concurrency: int, **extra: dict[str, Any]) -> Path:
    """config.toml for a bench run: wukong, 西游记 retrieval, Redis under `prefix`, summaries and facts on.

    The rate limit is raised so it never turns a bench message away, and the first-token timeout is
    long so every reply waits for the model instead of answering from the example lines."""
    data: dict[str, Any] = {
        "bot": {"data_dir": str(folder / "data"), "default_persona": "wukong", "rate_limit_per_minute": 1_000_000},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(folder / "imported")},
        "llm": {"base_url": base_url, "model": "test-model", "max_concurrency": concurrency,
                "first_token_timeout": 600.0, "deadline": 600.0},
        "memory": {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix, "summary": True, "facts": True},
        "knowledge": {"enabled": True, "mode": "bm25"},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of the run's own; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SystemExit(f"error: no Redis at {REDIS_URL} ({exc}); start one or set BOT_TEST_REDIS_URL") from None
    prefix = f"rpbench:{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


def report(result: dict[str, Any], floors: dict[str, bool], as_json: bool) -> None:
    """Print the numbers: one JSON object, or one line each with the floors checked."""
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>16}: {value:.3f}" if isinstance(value, float) else f"{key:>16}: {value}")
    for name, ok in floors.items():
        print(f"floor {name}: {'met' if ok else 'NOT met'}")
