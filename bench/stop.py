"""`python -m bench stop`: a burst into `python -m bot run --platform qq`, stopped in the middle, started again.

The bench is the OneBot implementation (as in `python -m bench qq`): it pushes M group messages over
G groups, stops the bot once S replies came back (SIGTERM, or SIGKILL with --kill), starts it again,
reconnects, and counts which messages were answered before the stop, during the drain and after the
restart, and which twice. The scripted model takes --llm-latency-ms per reply.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.load import REDIS_URL, ModelProcess, redis_prefix, report, write_config
from core.loop import run as run_loop
from tests.qq.onebot_impl import text
from tests.support.bot_process import BotProcess, Recorder

TOKEN = "bench-token"
SELF_ID = "10000"
FIRST_ID, GROUP0, USER0 = 900_000, 700_000, 300_000


def register(sub: Any) -> None:
    """Add the `stop` subcommand."""
    p = sub.add_parser("stop", help="stop the bot mid-burst (SIGTERM or kill -9), start it again, count answers")
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--groups", type=int, default=50)
    p.add_argument("--stop-after", type=int, default=16, help="replies received before the stop")
    p.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    p.add_argument("--drain-seconds", type=float, default=20.0, help="[bot] drain_seconds")
    p.add_argument("--llm-latency-ms", type=float, default=300.0)
    p.add_argument("--concurrency", type=int, default=4, help="[llm] max_concurrency")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the bench and print the numbers."""
    result = run_loop(run(args.messages, args.groups, args.stop_after, args.kill, args.drain_seconds,
                             args.llm_latency_ms, args.concurrency))
    floors = {"every message answered": result["lost"] == 0, "none twice": result["duplicated"] == 0,
              "no traceback": result["tracebacks"] == 0}
    report(result, floors, args.json)
    return 0


async def run(
    messages: int, groups: int, stop_after: int, kill: bool, drain: float, latency_ms: float, concurrency: int
) -> dict[str, Any]:
    """The numbers of one stop and restart."""
    with tempfile.TemporaryDirectory(prefix="rp-bench-stop-") as tmp, ModelProcess(latency_ms) as model, \
            redis_prefix() as prefix:
        folder = Path(tmp)
        config = write_config(folder, model.base_url, prefix, concurrency, qq={"enabled": True},
                              knowledge={"enabled": False}, bot={"drain_seconds": drain},
                              memory={"summary": False, "facts": False})
        bot = BotProcess(config, TOKEN)
        try:
            await bot.start()
            impl = Recorder(bot.url, SELF_ID, TOKEN)
            await impl.open()
            for i in range(messages):
                segments = [{"type": "at", "data": {"qq": SELF_ID}}, text(f" 悟空，第{i}句")]
                await impl.push(impl.group_message(segments, group_id=GROUP0 + i % groups, user_id=USER0 + i,
                                                   message_id=FIRST_ID + i))
            while len(impl.sent) < stop_after:
                await asyncio.sleep(0.01)
            before_stop = len(set(impl.quoted()))
            exit_s = await bot.stop(signal.SIGKILL if kill else signal.SIGTERM)
            await impl.close()
            first, out = impl.quoted(), bot.output()
            journaled = _journaled(prefix)
            restarted = time.perf_counter()
            await bot.start()
            again = Recorder(bot.url, SELF_ID, TOKEN)
            await again.open()
            patience = 30.0 + messages * latency_ms / 1000 / concurrency
            last, seen = time.perf_counter(), 0
            while time.perf_counter() - last < patience and len(set(first) | set(again.quoted())) < messages:
                await asyncio.sleep(0.2)
                if len(again.sent) != seen:
                    seen, last = len(again.sent), time.perf_counter()
            all_answered_s = time.perf_counter() - restarted
            await asyncio.sleep(2.0)  # late duplicates
            await bot.stop(signal.SIGTERM)
            await again.close()
            out += bot.output()
        finally:
            await bot.close()
    answers = Counter(first + again.quoted())
    return {
        "messages": messages,
        "answered_before_stop": before_stop,
        "answered_while_draining": len(set(first)) - before_stop,
        "journaled_at_stop": journaled,
        "answered_after_restart": len(set(again.quoted()) - set(first)),
        "lost": messages - len(answers),
        "duplicated": sum(n - 1 for n in answers.values()),
        "exit_s": exit_s,
        "exit_status": bot.returncode if not kill else "killed",
        "tracebacks": out.count("Traceback"),
        "all_answered_after_restart_s": all_answered_s,
    }


def _journaled(prefix: str) -> int:
    """Messages in the journal (Redis) right after the stop."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.hlen(f"{prefix}:v2:journal:owner"))
    finally:
        client.close()
