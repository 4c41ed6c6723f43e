"""`python -m bench runaway`: a model server that ignores max_tokens and streams megabytes.

Through the real App (SQLite memory, the scripted OpenAI-compatible server on 127.0.0.1): the time
from the message to the reply, how much of the stream was read, and what was kept. Then the
reply checks alone over growing streams, to show how their cost grows with the text.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import ROOT
from core.loop import run as run_loop

TEXT = "咱乃贤狼赫萝，汝可要记好了。苹果和酒，咱都喜欢。"


def register(sub: Any) -> None:
    """Add `runaway`."""
    p = sub.add_parser("runaway", help="a model server that ignores the reply cap and streams megabytes")
    p.add_argument("--chars", type=int, default=2_000_000, help="characters the server streams")
    p.add_argument("--chunk", type=int, default=16, help="characters per stream event")
    p.add_argument("--max-tokens", type=int, default=512, help="[llm] max_tokens (the cap the server ignores)")
    p.add_argument("--check-sizes", default="4000,16000,64000", help="stream lengths for the reply checks alone")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the numbers."""
    run_loop(_through_app(args))
    sizes = [int(s) for s in args.check_sizes.split(",") if s.strip()]
    print("reply checks alone (2 characters a piece):")
    for size in sizes:
        print(f"  {size:7d} characters: {_check(size):.3f} s")
    return 0


async def _through_app(args: argparse.Namespace) -> None:
    from bot.app import App
    from core.config import load_config
    from core.messages import Incoming
    from memory.turns import SessionKey
    from tests.support.openai_server import FakeOpenAI, Script

    text = (TEXT * (args.chars // len(TEXT) + 1))[: args.chars]
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as srv:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(
            f'[bot]\ndata_dir = "{tmp}/data"\n[personas]\ndirs = ["{ROOT}/persona"]\n'
            '[memory]\nbackend = "sqlite"\nfacts = false\nsummary = false\n[knowledge]\nenabled = false\n'
            f'[pacing]\nenabled = false\n[llm]\nbase_url = "{srv.base_url}"\nmodel = "test-model"\n'
            f"max_tokens = {args.max_tokens}\n",
            encoding="utf-8",
        )
        srv.default = Script(text=text, chunk_size=args.chunk)
        async with App.open(load_config(cfg)) as app:
            msg = Incoming("test", "dm-bench", "bench", "Bench", "讲个故事", is_direct=True)
            started = time.perf_counter()
            reply = await app.chain.handle(msg)
            took = time.perf_counter() - started
            stored = await app.store.recent(SessionKey("horo", "test", "dm", "bench"), 2)
        sent = srv.wait_for_streams(1)[0]
    print(f"runaway stream of {args.chars:,} characters ({len(text.encode()):,} bytes of text), "
          f"{args.chunk} per event, max_tokens {args.max_tokens}:")
    print(f"  reply after {took:.2f} s ({reply.mode if reply else 'none'}), {len(reply.text) if reply else 0:,} characters;"
          f" stored reply {len(stored[-1].text) if stored else 0:,} characters")
    print(f"  server sent {sent:,} bytes of events before the stream ended (client hung up: {bool(srv.hung_up)})")


def _check(size: int) -> float:
    from bot.checks.hygiene import Hidden, ReplyCheck
    from persona.library import PersonaLibrary

    horo = PersonaLibrary([ROOT / "persona"]).get("horo")
    text = (TEXT * (size // len(TEXT) + 1))[:size]
    check = ReplyCheck(horo, Hidden(horo), "你好", ["Alice"])
    started = time.perf_counter()
    for i in range(0, size, 2):
        check.feed(text[i : i + 2])
    check.finish()
    return time.perf_counter() - started
