"""`python -m bench model`: the bot against a real model server (llama.cpp with SmolLM2 by default).

Per shipped persona: the stable prompt in the server's tokens (whole, and as trimmed for the
context), time to the first shown text and to the whole reply, and the share of prompt tokens the
server served from its prefix cache between consecutive turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TURNS = ["你好", "你是谁？", "你喜欢什么？", "为什么？", "讲讲你的朋友吧", "他们现在在哪？", "你想他们吗？",
         "我们明天去哪儿？", "那里远吗？", "好，晚安"]


def register(sub: Any) -> None:
    """Add `model`."""
    p = sub.add_parser("model", help="the bot against a real model server (llama.cpp + SmolLM2 from .venv-llm)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context of the llama.cpp server it starts")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--turns", type=int, default=len(TURNS))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the server, run each persona's conversation, print the numbers."""
    from tests.real_model.llama import LlamaServer, find_gguf

    python = ROOT / ".venv-llm" / "bin" / "python"
    if not python.exists():
        print("bench model: no .venv-llm; run `bash .ci/llm.sh` first")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        server = LlamaServer(python, find_gguf(python), args.n_ctx, Path(tmp) / "server.log").start()
        try:
            results = {pid: asyncio.run(_persona(pid, server, args, Path(tmp) / pid)) for pid in ("horo", "yexiu", "wukong")}
        finally:
            server.stop()
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
        return 0
    print(f"llama.cpp server, SmolLM2-135M-Instruct, n_ctx {args.n_ctx}, --n_threads 1, max_tokens {args.max_tokens}")
    for pid, r in results.items():
        print(f"{pid:7} stable prompt {r['stable_tokens_full']} tokens (sent: {r['stable_tokens_sent']}); "
              f"first text p50 {r['first_text_p50_s']:.2f} s, whole reply p50 {r['reply_p50_s']:.2f} s; "
              f"prefix cached {r['prefix_cached']:.1%}; replies by model {r['model_replies']}/{r['turns']}")
    return 0


async def _persona(pid: str, server: Any, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    import tomli_w

    from bot.app import App
    from core.config import load_config
    from core.messages import Incoming
    from persona.prompt import stable_prompt

    data.mkdir(parents=True)
    cfg = {
        "bot": {"data_dir": str(data), "default_persona": pid, "rate_limit_per_minute": 1000},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(data / "imported")},
        "memory": {"backend": "sqlite", "summary": False, "facts": False},
        "knowledge": {"enabled": False},
        "llm": {"base_url": server.base_url, "max_tokens": args.max_tokens, "context_tokens": args.n_ctx,
                "request_timeout": 120.0, "deadline": 120.0, "first_token_timeout": 120.0},
    }
    (data / "config.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    settings = load_config(data / "config.toml")
    firsts: list[float] = []
    wholes: list[float] = []
    model_replies = 0
    async with App.open(settings) as app:
        persona = app.personas.get(pid)
        model = app.model
        assert model is not None
        mark = server.mark()
        for text in TURNS[: args.turns]:
            start = time.monotonic()
            first: list[float] = []

            async def sink(delta: str, first: list[float] = first, start: float = start) -> None:
                if not first and delta.strip():
                    first.append(time.monotonic() - start)

            reply = await app.chain.handle(
                Incoming("test", "bench", "u1", "Alice", text, is_direct=True), sink
            )
            wholes.append(time.monotonic() - start)
            firsts.extend(first[:1])
            model_replies += bool(reply and reply.mode == "model")
        hits = server.prefix_hits(mark)[1:]
        sent = app.chain.stages[3].stable(persona)  # type: ignore[attr-defined]
        full = stable_prompt(persona, settings.llm.example_tokens)
        count = model.count  # type: ignore[attr-defined]
        return {
            "stable_tokens_full": await count(full),
            "stable_tokens_sent": await count(sent),
            "first_text_p50_s": statistics.median(firsts) if firsts else float("nan"),
            "reply_p50_s": statistics.median(wholes),
            "prefix_cached": sum(c for c, _ in hits) / max(1, sum(c + e for c, e in hits)),
            "model_replies": model_replies,
            "turns": len(wholes),
        }
