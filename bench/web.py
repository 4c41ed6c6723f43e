"""`python -m bench web`: the web console over a full store, and chat streams through the page.

The store (Redis, a key prefix of the run's own, deleted afterwards) is filled directly in the
shapes the bot writes (memory/redis_store.py): `--conversations` conversations of `--turns` turns
each over several platforms and characters, three speakers each with their fact books, and the
"why" records of the conversations the bench opens; without the session list, as a version before
it left them, so the start-up backfill (memory/redis_index.py) lists them, timed. Then the real App and the page's real uvicorn
listener run, and one client asks, one request at a time, for conversation list pages (some with a
search), conversation pages and /api/status. Server time is measured in the page's ASGI app, from
the request's arrival to its last byte.

Then `--browsers` chats of `--messages` messages each run at once against the scripted model
server (`--llm-latency-ms`, streamed in chunks, 4 slots): first straight into the chain (the
baseline, as `bench pipeline` drives it), then through the page, each browser (in a process of
their own) posting to /chat/send and reading its streamed reply before sending the next. Pipeline
overhead per message is the wall time of `Chain.handle` less the time spent waiting on the model's
stream (its slot queue included), as `bench pipeline` measures it; the baseline shows what the
machine gives at that moment (other work on it raises both alike).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.load import REDIS_URL, ModelProcess, pct, question, redis_prefix, report, write_config
from bench.pipeline import _WAITED, TimedModel
from bot.app import App
from bot.pipeline.stages.generate import Generate
from bot.web.run import fronts
from bot.web.server import WebServer
from core.config import load_config
from core.loop import run as run_loop
from core.messages import Incoming
from memory.open import SHAPES
from memory.redis_store import RedisStore
from memory.turns import Cited, Fact, FactBook, LastContext, SessionKey, Turn
from tests.support.outlet import Recorder
from tests.support.ports import free_port
from tests.support.texts import varied_chinese

TOKEN = "bench-web-token-" + "b" * 32
PLACES = (("qq", "group"), ("discord", "group"), ("qq", "dm"), ("web", "dm"), ("terminal", "dm"))
PERSONAS = ("wukong", "horo", "yexiu")
BATCH = 100  # conversations per pipelined write


class Timing:
    """ASGI middleware: each request's server time (arrival to last byte sent), by path (a search apart)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.ms: dict[str, list[float]] = defaultdict(list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            search = b"q=" in scope.get("query_string", b"")
            self.ms[scope["path"] + ("?q" if search else "")].append(1000 * (time.perf_counter() - started))


def register(sub: Any) -> None:
    """Add the `web` subcommand."""
    p = sub.add_parser("web", help="the web console over a full store, and chat streams through the page")
    p.add_argument("--conversations", type=int, default=10_000)
    p.add_argument("--turns", type=int, default=100, help="turns per conversation")
    p.add_argument("--requests", type=int, default=300, help="requests of each kind")
    p.add_argument("--browsers", type=int, default=20)
    p.add_argument("--messages", type=int, default=10, help="chat messages per browser")
    p.add_argument("--llm-latency-ms", type=float, default=300.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the bench and print the numbers."""
    result = run_loop(run(args.conversations, args.turns, args.requests, args.browsers, args.messages,
                             args.llm_latency_ms))
    floors = {
        "conversation list p95 <= 100 ms": result["list_p95_ms"] <= 100,
        "conversation search p95 <= 100 ms": result["search_p95_ms"] <= 100,
        "conversation page p95 <= 100 ms": result["page_p95_ms"] <= 100,
        "/api/status p95 <= 20 ms": result["status_p95_ms"] <= 20,
        "overhead through the page p50 <= 10 ms": result["page_overhead_p50_ms"] <= 10,
        "overhead through the page p99 <= 50 ms": result["page_overhead_p99_ms"] <= 50,
    }
    report(result, floors, args.json)
    return 0


async def run(conversations: int, turns: int, requests: int, browsers: int, messages: int,
              latency_ms: float) -> dict[str, Any]:
    """The numbers of one run."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rp-bench-web-") as tmp, ModelProcess(latency_ms) as srv, \
            redis_prefix() as prefix:
        started = time.perf_counter()
        keys = await fill(f"{prefix}:{SHAPES}", conversations, turns, requests)
        result |= {"conversations": conversations, "turns": conversations * turns,
                   "fill_s": time.perf_counter() - started}
        # written as an older version would (no session list): the start-up backfill lists them
        store = RedisStore(REDIS_URL, prefix=f"{prefix}:{SHAPES}")
        started = time.perf_counter()
        try:
            listed = await store.index_sessions()
        finally:
            await store.close()
        result["backfill_s"] = time.perf_counter() - started
        if listed != conversations:
            raise SystemExit(f"error: the backfill listed {listed} of {conversations} conversations")
        config = write_config(Path(tmp), srv.base_url, prefix, 4, knowledge={"enabled": False},
                              web={"port": free_port()}, bot={"default_persona": "wukong", "rate_limit_per_minute": 1_000_000})
        settings = load_config(config, env_file=Path(tmp) / "none")
        async with App.open(settings) as app:
            server = WebServer(app, fronts(app, discord=False, qq=False), token=TOKEN, out=io.StringIO())
            timing = Timing(server.asgi)
            server.server.config.app = timing  # the listener serves the timed app
            task = asyncio.create_task(server.serve())
            while not server.server.started:
                await asyncio.sleep(0.02)
            base = f"http://127.0.0.1:{server.port}"
            try:
                result |= await console(base, timing, keys, conversations, requests)
                result |= await streams(app, base, browsers, messages)
            finally:
                await server.stop()
                await task
    result["llm_latency_ms"] = latency_ms
    result["load_average"] = os.getloadavg()[0]  # other work on the machine: all the times above rise with it
    return result


async def fill(prefix: str, conversations: int, turns: int, opened: int) -> list[SessionKey]:
    """Write the conversations in the store's shapes; the keys of the `opened` ones the bench will open."""
    rng = random.Random(7)
    lines = [varied_chinese(rng.randrange(12, 60), seed) for seed in range(500)]
    r = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    now = time.time()
    keys = []
    try:
        for first in range(0, conversations, BATCH):
            async with r.pipeline(transaction=False) as pipe:
                for n in range(first, min(conversations, first + BATCH)):
                    platform, scope = PLACES[n % len(PLACES)]
                    key = SessionKey(PERSONAS[n % len(PERSONAS)], platform, scope, f"{100000 + n}")  # type: ignore[arg-type]
                    keys.append(key)
                    end = now - rng.uniform(0, 30 * 86400)
                    users = [(f"{n}{u}", f"成员{n}-{u}") for u in range(3)] if scope == "group" else [(key.id, f"访客{n}")]
                    body = []
                    for seq in range(1, turns + 1):
                        at = end - (turns - seq) * 60
                        uid, name = users[seq % len(users)]
                        turn = Turn("user", lines[(n + seq) % len(lines)], uid, name, True, at, f"m{n}-{seq}") if seq % 2 \
                            else Turn("assistant", lines[(n * 7 + seq) % len(lines)], "", "角色", True, at)
                        body.append(f"{seq}|{turn.dumps()}")
                    base = f"{prefix}:s:{key}"
                    pipe.rpush(f"{base}:turns", *body)
                    pipe.set(f"{base}:seq", turns)
                    for uid, _ in users:
                        facts = tuple(Fact(i, lines[(n + i) % len(lines)][:30], end, key.conversation.place) for i in (1, 2, 3))
                        pipe.set(f"{prefix}:facts:{key.persona}:{platform}:{uid}", FactBook(facts).dumps())
                await pipe.execute()
        chosen = rng.sample(keys, min(opened, len(keys)))
        async with r.pipeline(transaction=False) as pipe:
            for key in chosen:  # what the last 20 replies were given, for the page's "why"
                for seq in range(turns - 38, turns + 1, 2):
                    cited = (Cited("memory", lines[seq % len(lines)], "3天前 · 成员"), Cited("lore", lines[(seq + 1) % len(lines)], "花果山"))
                    ctx = LastContext(now, "u", "成员", lines[seq % len(lines)], "model", cited, seq,
                                      (("system", 1400), ("turns", 900), ("lore", 120), ("message", 30)))
                    pipe.lpush(f"{prefix}:s:{key}:whys", ctx.dumps())
            await pipe.execute()
    finally:
        await r.aclose()
    return chosen


async def console(base: str, timing: Timing, keys: list[SessionKey], conversations: int,
                  requests: int) -> dict[str, float]:
    """List pages, conversation pages and /api/status, one request at a time; their server times."""
    rng = random.Random(11)
    last_page = max(1, conversations // 50)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        async def get(url: str) -> None:
            r = await client.get(url)
            if r.status_code != 200:
                raise SystemExit(f"error: GET {url} answered {r.status_code}: {r.text[:200]}")

        for _ in range(10):  # warm: connections, imports, the first page of the index
            await get("/conversations")
            await get("/api/status")
        timing.ms.clear()
        for i in range(requests):
            query = {"page": rng.randrange(1, last_page + 1)}
            await get(f"/conversations?{urlencode(query)}")
            if i % 5 == 0:
                await get(f"/conversations?{urlencode({'q': f'{rng.randrange(100000, 100000 + conversations)}'})}")
        for key in keys[:requests]:
            await get(f"/conversation?{urlencode({'key': str(key)})}")
        for _ in range(requests):
            await get("/api/status")
    lists, found = timing.ms["/conversations"], timing.ms["/conversations?q"]
    return {
        "list_p50_ms": pct(lists, 0.5), "list_p95_ms": pct(lists, 0.95),
        "search_p50_ms": pct(found, 0.5), "search_p95_ms": pct(found, 0.95),
        "page_p50_ms": pct(timing.ms["/conversation"], 0.5), "page_p95_ms": pct(timing.ms["/conversation"], 0.95),
        "status_p50_ms": pct(timing.ms["/api/status"], 0.5), "status_p95_ms": pct(timing.ms["/api/status"], 0.95),
    }


async def streams(app: App, base: str, browsers: int, messages: int) -> dict[str, float]:
    """The same chats twice: straight into the chain (the baseline), then through the page's streams.

    Pipeline overhead per message for each, the page's time to the first words, and CPU per message.
    """
    generate = next(s for s in app.chain.stages if isinstance(s, Generate))
    assert generate.model is not None
    generate.model = TimedModel(generate.model)
    walls: list[float] = []
    waits: list[float] = []
    handle: Callable[..., Awaitable[Any]] = app.chain.handle

    async def timed(*args: Any, **kw: Any) -> Any:
        waited = [0.0]
        _WAITED.set(waited)
        t = time.perf_counter()
        try:
            return await handle(*args, **kw)
        finally:
            walls.append(time.perf_counter() - t)
            waits.append(waited[0])

    async def sink(delta: str) -> None:  # the reply streams as it would to a page, to nobody
        pass

    async def direct(b: int, count: int = messages) -> None:
        for m in range(count):
            msg = Incoming("web", f"direct{b}", f"direct{b}", "", question(m), message_id=f"d{b}-{m}", is_direct=True)
            await timed(msg, Recorder(partial=sink))

    await asyncio.gather(*(direct(-1 - b, 2) for b in range(browsers)))  # warm: first prompts, caches
    walls.clear()
    waits.clear()
    result: dict[str, float] = {}
    cpu = time.process_time()
    await asyncio.gather(*(direct(b) for b in range(browsers)))
    result |= _overheads("direct", walls, waits, time.process_time() - cpu)
    walls.clear()
    waits.clear()
    app.chain.handle = timed  # type: ignore[method-assign]
    # the browsers run in a process of their own, as real ones would: their work is not the bot's
    ctx = multiprocessing.get_context("spawn")
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=_browsers, args=(base, browsers, messages, child), name="browsers", daemon=True)
    proc.start()
    cpu = time.process_time()
    while not conn.poll():
        await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu
    firsts, deltas = conn.recv()
    proc.join(timeout=10)
    app.chain.handle = handle  # type: ignore[method-assign,assignment]
    return result | _overheads("page", walls, waits, cpu) | {
        "page_deltas_per_reply": sum(deltas) / max(1, len(deltas)),
        "page_first_words_p50_ms": pct(firsts, 0.5), "page_first_words_p95_ms": pct(firsts, 0.95)}


def _overheads(name: str, walls: list[float], waits: list[float], cpu: float) -> dict[str, float]:
    overheads = [1000 * (w - m) for w, m in zip(walls, waits, strict=True)]
    return {f"{name}_messages": len(walls), f"{name}_overhead_p50_ms": pct(overheads, 0.5),
            f"{name}_overhead_p99_ms": pct(overheads, 0.99), f"{name}_cpu_ms_per_message": 1000 * cpu / max(1, len(walls))}


def _browsers(base: str, browsers: int, messages: int, conn: Connection) -> None:
    """Each browser sends its messages one after another, reading each streamed reply to its end.

    They stand in for browsers on other machines: at the lowest priority, they take only the CPU the
    bot leaves (on a machine of few cores they would otherwise take it from the bot)."""
    os.nice(19)
    firsts: list[float] = []
    deltas: list[int] = []

    async def browser(b: int) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, cookies={"rp_visitor": f"bench{b}"}, timeout=120) as client:
            for m in range(messages):
                t = time.perf_counter()
                first, seen = 0.0, 0
                async with client.stream("POST", "/chat/send", json={"text": question(m)}) as r:
                    async for line in r.aiter_lines():
                        if line.startswith('{"delta"'):
                            seen += 1
                            first = first or time.perf_counter() - t
                firsts.append(1000 * (first or time.perf_counter() - t))
                deltas.append(seen)

    async def everyone() -> None:
        await asyncio.gather(*(browser(b) for b in range(browsers)))

    run_loop(everyone())
    conn.send((firsts, deltas))
