"""`python -m bench pipeline`: M messages from N group chats through the real App (Redis, 西游记, model).

Each channel is a conversation: its messages go one after another (the next when the reply came),
all channels at once, paced to `--rate` messages/s when given. Every message names the character,
so each gets its own reply; each channel's user talks long enough for facts to be noted. Overhead per message is the wall time of
`Chain.handle` less the time spent waiting on the model's stream (its slot queue included).

The scripted server reports no context size, as lmdeploy does not; the bot is told the context
the shipped deployment serves (`--session-len 8192` in docker-compose.yml and the README), as a
deployment must tell it. Prefix reuse is measured on the prompts rendered as a chat template
renders them, in tokens (bench/load.py `prefix_reuse`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import resource
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from bench.load import (
    ModelProcess,
    ideal,
    ingest,
    mark,
    pct,
    prefix_reuse,
    question,
    redis_prefix,
    report,
    write_config,
)
from bot.app import App
from bot.pipeline.stages.generate import Generate
from core.config import load_config
from core.llm import ChatMessage, ChatModel
from core.loop import run as run_loop
from core.messages import Incoming
from tests.support.requests import is_background

_WAITED: contextvars.ContextVar[list[float]] = contextvars.ContextVar("waited")


class TimedModel:
    """The App's own model client; the time spent waiting on its stream is added to the current message."""

    def __init__(self, inner: ChatModel):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stream(self, messages: Sequence[ChatMessage], **kw: Any) -> AsyncGenerator[str, None]:
        """The inner stream, timed around each wait for the next piece."""
        account = _WAITED.get(None)
        inner = self.inner.stream(messages, **kw)
        try:
            while True:
                t = time.perf_counter()
                try:
                    delta = await anext(inner)
                except StopAsyncIteration:
                    return
                finally:
                    if account is not None:
                        account[0] += time.perf_counter() - t
                yield delta
        finally:
            t = time.perf_counter()
            await inner.aclose()
            if account is not None:
                account[0] += time.perf_counter() - t


def register(sub: Any) -> None:
    """Add the `pipeline` subcommand."""
    p = sub.add_parser("pipeline", help="messages from many channels through the real App")
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--llm-latency-ms", type=float, default=300.0)
    p.add_argument("--rate", type=float, default=0.0, help="messages/s offered at most (0: as fast as replies come)")
    p.add_argument("--concurrency", type=int, default=4, help="[llm] max_concurrency")
    p.add_argument("--context-tokens", type=int, default=8192, help="[llm] context_tokens (the shipped --session-len)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the bench and print the numbers."""
    result = run_loop(
        run(args.channels, args.messages, args.llm_latency_ms, args.rate, args.concurrency, args.context_tokens)
    )
    floors = {
        "throughput >= 0.9 x ideal": result["throughput"] >= 0.9 * result["ideal"],
        "overhead p50 <= 10 ms": result["overhead_p50_ms"] <= 10,
        "overhead p99 <= 50 ms": result["overhead_p99_ms"] <= 50,
        "prefix reuse >= 0.8": result["prefix_reuse"] >= 0.8,
    }
    report(result, floors, args.json)
    return 0


async def run(
    channels: int, messages: int, latency_ms: float, rate: float, concurrency: int, context: int = 8192
) -> dict[str, Any]:
    """The numbers of one run."""
    with tempfile.TemporaryDirectory(prefix="rp-bench-") as tmp, ModelProcess(latency_ms) as srv, redis_prefix() as prefix:
        ingest(Path(tmp) / "data")
        config = write_config(Path(tmp), srv.base_url, prefix, concurrency, llm={"context_tokens": context})
        settings = load_config(config, env_file=Path(tmp) / "none")
        async with App.open(settings) as app:
            generate = next(s for s in app.chain.stages if isinstance(s, Generate))
            assert generate.model is not None
            generate.model = TimedModel(generate.model)
            await app.knowledge.lookup(app.personas.get("wukong"), "花果山", [], None)  # load the index once
            srv.clear()
            cpu = time.process_time()
            walls, waits, started = await _drive(app, channels, messages, rate, concurrency, latency_ms)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
            requests = srv.requests()
        # background jobs wait while any reply waits for a slot; closing gives them 10 s
        after = sum(1 for b in srv.requests()[len(requests) :] if is_background(b))
    overheads = [1000 * (w - m) for w, m in zip(walls, waits, strict=True)]
    return {
        "replies": len(walls),
        "throughput": len(walls) / wall,
        "ideal": ideal(rate, channels, concurrency, latency_ms),
        "overhead_p50_ms": pct(overheads, 0.5),
        "overhead_p99_ms": pct(overheads, 0.99),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "prefix_reuse": prefix_reuse(requests),
        "context_tokens": context,
        "background_during": sum(1 for b in requests if is_background(b)),
        "background_at_close": after,
        "cpu_ms_per_message": 1000 * cpu / max(1, len(walls)),
    }


async def _drive(
    app: App, channels: int, messages: int, rate: float, concurrency: int, latency_ms: float
) -> tuple[list[float], list[float], float]:
    """Every channel's messages in turn; (handle wall times, model waits, start time)."""
    walls: list[float] = []
    waits: list[float] = []
    started = time.perf_counter()
    # channels join one after another over the first round, at the rate replies can come, so the run
    # measures the steady state rather than N messages landing in the same millisecond (`bench qq` does that)
    join = 1 / ideal(rate, channels, concurrency, latency_ms)

    async def channel(ch: int) -> None:
        await asyncio.sleep(ch * join)
        for seq in range(ch, messages, channels):
            if rate > 0:
                await asyncio.sleep(max(0.0, started + seq / rate - time.perf_counter()))
            text = f"悟空，{question(seq)} {mark(ch, seq)}"
            msg = Incoming("test", f"g{ch}", f"u{ch}", f"客人{ch}", text, message_id=f"m{seq}", mentions_bot=True)
            waited = [0.0]
            _WAITED.set(waited)
            t = time.perf_counter()
            reply = await app.chain.handle(msg)
            walls.append(time.perf_counter() - t)
            waits.append(waited[0])
            if reply is None or reply.mode != "model":
                print(f"warning: message {seq} got {reply.mode if reply else 'no reply'}", file=sys.stderr)

    await asyncio.gather(*(channel(ch) for ch in range(channels)))
    return walls, waits, started
