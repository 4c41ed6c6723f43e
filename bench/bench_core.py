"""Core benchmark: memory store latency (Redis, SQLite) and pipeline overhead per message.

Prints numbers; asserts nothing. Run: .venv/bin/python bench/bench_core.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import App  # noqa: E402
from core.config import load_config  # noqa: E402
from core.messages import Incoming  # noqa: E402
from memory.redis_store import RedisStore  # noqa: E402
from memory.sqlite_store import SQLiteStore  # noqa: E402
from memory.store import ConversationStore  # noqa: E402
from memory.turns import SessionKey, Turn  # noqa: E402
from tests.support.openai_server import FakeOpenAI, Script  # noqa: E402

REDIS = os.environ.get("BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pct(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_store(store: ConversationStore, n: int = 500) -> None:
    """append (user + reply) and recent(120) latency."""
    key = SessionKey("bench", "bench", "group", uuid.uuid4().hex)
    appends, reads = [], []
    for i in range(n):
        t0 = time.perf_counter()
        await store.append(key, [Turn("user", f"消息{i}" * 10, "u"), Turn("assistant", "回复" * 20)])
        appends.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await store.recent(key, 120)
        reads.append(time.perf_counter() - t0)
    await store.reset(key)
    print(f"  {store.name:6s} append p50 {pct(appends, .5):.2f} ms p95 {pct(appends, .95):.2f} ms | "
          f"recent(120) p50 {pct(reads, .5):.2f} ms p95 {pct(reads, .95):.2f} ms")


async def bench_chain(tmp: Path, srv: FakeOpenAI, provider: str, n: int = 200, sessions: int = 1) -> None:
    """Time per message through the whole pipeline with an instant model server."""
    cfg = tmp / f"{provider}-{sessions}.toml"
    cfg.write_text(
        f'[bot]\ndata_dir = "{tmp}/data-{provider}-{sessions}"\nrate_limit_per_minute = 100000\n[personas]\ndirs = ["{ROOT}/persona"]\n'
        f'[memory]\nbackend = "sqlite"\nfacts = false\nsummary = false\n[knowledge]\nenabled = false\n'
        f'[llm]\nprovider = "{provider}"\nbase_url = "{srv.base_url}"\nmodel = "test-model"\nmax_concurrency = 8\n',
        encoding="utf-8",
    )
    settings = load_config(cfg)
    async with App.open(settings) as app:
        async def one(i: int) -> float:
            msg = Incoming("test", f"c{i % sessions}", f"u{i % sessions}", "Bench", f"你好，第{i}次", is_direct=True)
            t0 = time.perf_counter()
            await app.chain.handle(msg)
            return time.perf_counter() - t0

        t0 = time.perf_counter()
        if sessions == 1:
            times = [await one(i) for i in range(n)]
        else:
            times = list(await asyncio.gather(*(one(i) for i in range(n))))
        wall = time.perf_counter() - t0
    print(f"  {provider:7s} sessions={sessions:3d}: {n / wall:7.1f} msg/s; per message p50 {pct(times, .5):.1f} ms "
          f"p95 {pct(times, .95):.1f} ms")


async def main() -> None:
    """Run every benchmark."""
    print("memory store (500 exchanges, one session)")
    with tempfile.TemporaryDirectory() as tmp:
        for store in (RedisStore(REDIS, prefix=f"rpbench:{uuid.uuid4().hex[:6]}"), SQLiteStore(Path(tmp) / "b.sqlite3")):
            try:
                await bench_store(store)
            finally:
                await store.close()
        print("pipeline, model server answering instantly (streamed, 1 chunk per 4 chars)")
        with FakeOpenAI() as srv:
            srv.default = Script(text="呵呵，汝说得倒也有几分道理，咱就姑且听听吧。", chunk_size=4)
            await bench_chain(Path(tmp), srv, "openai")
            await bench_chain(Path(tmp), srv, "openai", n=200, sessions=20)
            await bench_chain(Path(tmp), srv, "offline")


if __name__ == "__main__":
    asyncio.run(main())
