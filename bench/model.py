"""`python -m bench model`: the bot against a real model server (llama.cpp with SmolLM2 by default).

Runs the fixed chats of bench/model_chats.py (each shipped character, Chinese and English, 8
turns) through the whole pipeline with the shipped memory settings (summaries and facts on) and
prints, per setting (private chat, group): the defects the reply check found by kind, what was
done with them, defects shown (scanning what reached the user again: must be 0), the share of shown
replies in the model's own words, reply length p50/p95, the prefix reuse the server reports
between consecutive replies, first-text and whole-reply latency, and the check's own cost.

`--base-url URL` runs against any OpenAI-compatible server instead of starting llama.cpp (prefix
reuse is then not measured: only llama.cpp's log reports it here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.model_chats import CHATS
from core.loop import run as run_loop
from tests.support.outlet import Recorder

ROOT = Path(__file__).resolve().parent.parent
_OUTCOME = re.compile(r"-(zh|en): model reply had a (\w+) defect; (kept|asking|answering)")
_OUTCOMES = {"kept": "cut", "asking": "retried", "answering": "offline"}


def register(sub: Any) -> None:
    """Add `model`."""
    p = sub.add_parser("model", help="the bot against a real model server (llama.cpp + SmolLM2 from .venv-llm)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context of the llama.cpp server it starts")
    p.add_argument("--base-url", default="", help="an OpenAI-compatible server to use instead of starting llama.cpp")
    p.add_argument("--settings", default="private,group", help="comma-separated: private, group")
    p.add_argument("--personas", default=",".join(CHATS))
    p.add_argument("--languages", default="zh,en")
    p.add_argument("--turns", type=int, default=8)
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print each shown reply, its mode and any defect in it")
    p.add_argument("--record", type=Path, help="keep each reply's stream (deltas) in this JSON-lines file, "
                   "for `python -m bench check --recorded FILE`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the server (unless given one), run every chat per setting, print the table."""
    from tests.real_model.llama import LlamaServer, find_gguf

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server: Any = None
        if not args.base_url:
            python = Path(os.environ.get("BOT_TEST_LLM_PYTHON", "") or ROOT / ".venv-llm" / "bin" / "python")
            if not python.exists():
                print(f"bench model: no {python}; run `bash .ci/llm.sh` first, or pass --base-url")
                return 2
            server = LlamaServer(python, find_gguf(python), args.n_ctx, Path(tmp) / "server.log").start()
        try:
            for setting in args.settings.split(","):
                results[setting] = run_loop(_setting(setting, server, args, Path(tmp) / setting))
        finally:
            if server is not None:
                server.stop()
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
        return 0
    where = args.base_url or f"llama.cpp server, SmolLM2-135M-Instruct Q4_1, n_ctx {args.n_ctx}, --n_threads 1"
    print(f"{where}; summaries and facts on (shipped defaults)")
    print(table(results))
    return 0


def table(results: dict[str, dict[str, Any]]) -> str:
    """The numbers as a Markdown table, one column per setting."""
    rows = [
        ("replies (zh / en)", lambda r: f"{r['replies'].get('zh', 0)} / {r['replies'].get('en', 0)}"),
        ("defects found, zh", lambda r: _tally(r["defects"]["zh"]) or "0"),
        ("defects found, en", lambda r: _tally(r["defects"]["en"]) or "0"),
        ("what was done, zh", lambda r: _tally(r["outcomes"]["zh"]) or "-"),
        ("what was done, en", lambda r: _tally(r["outcomes"]["en"]) or "-"),
        ("defects shown", lambda r: str(r["shown_defects"])),
        ("asked again (share of replies)", lambda r: f"{r['retried_share']:.0%}"),
        ("model's own words, zh / en", lambda r: f"{r['own_words']['zh']:.0%} / {r['own_words']['en']:.0%}"),
        ("reply length p50 / p95 (chars)", lambda r: f"{r['length_p50']} / {r['length_p95']}"),
        ("prefix reuse between replies", lambda r: "-" if r["prefix_reuse"] is None else f"{r['prefix_reuse']:.0%}"),
        ("first text p50 / p95 (s)", lambda r: f"{r['first_p50']:.2f} / {r['first_p95']:.2f}"),
        ("whole reply p50 / p95 (s)", lambda r: f"{r['whole_p50']:.2f} / {r['whole_p95']:.2f}"),
        ("check cost p50 / p99 (ms)", lambda r: f"{r['check_p50_ms']:.2f} / {r['check_p99_ms']:.2f}"),
    ]
    head = "| | " + " | ".join(results) + " |\n|---|" + "---|" * len(results)
    return head + "\n" + "\n".join(f"| {name} | " + " | ".join(f(r) for r in results.values()) + " |" for name, f in rows)


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


class _Outcomes(logging.Handler):
    """Collects the generate stage's defect lines (they carry the kind and the outcome, never the text)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, str, str]] = []  # (language of the chat, kind, outcome)

    def emit(self, record: logging.LogRecord) -> None:
        m = _OUTCOME.search(record.getMessage())
        if m:
            self.seen.append((m.group(1), m.group(2), _OUTCOMES[m.group(3)]))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _setting(setting: str, server: Any, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    outcomes = _Outcomes()
    logging.getLogger("bot.pipeline.stages.generate").addHandler(outcomes)
    logging.getLogger("bot.pipeline.stages.generate").setLevel(logging.INFO)
    stats: dict[str, Any] = {"firsts": [], "wholes": [], "lengths": [], "hits": [], "streams": [], "shown": 0,
                             "own": Counter(), "replies": Counter()}
    try:
        for pid in args.personas.split(","):
            for lang in args.languages.split(","):
                await _chat(pid, lang, setting, server, args, data / f"{pid}-{lang}", stats)
    finally:
        logging.getLogger("bot.pipeline.stages.generate").removeHandler(outcomes)
    costs = _check_costs(stats["streams"], args.record)
    hits = stats["hits"]
    total = sum(stats["replies"].values())
    return {
        "replies": dict(stats["replies"]),
        "defects": {lang: dict(Counter(kind for lg, kind, _ in outcomes.seen if lg == lang)) for lang in ("zh", "en")},
        "outcomes": {lang: dict(Counter(o for lg, _, o in outcomes.seen if lg == lang)) for lang in ("zh", "en")},
        "shown_defects": stats["shown"],
        "retried_share": sum(1 for _, _, o in outcomes.seen if o == "retried") / max(1, total),
        "own_words": {lang: stats["own"][lang] / max(1, stats["replies"][lang]) for lang in ("zh", "en")},
        "length_p50": int(_pct(stats["lengths"], 0.5)), "length_p95": int(_pct(stats["lengths"], 0.95)),
        "prefix_reuse": sum(c for c, _ in hits) / sum(c + e for c, e in hits) if hits else None,
        "first_p50": _pct(stats["firsts"], 0.5), "first_p95": _pct(stats["firsts"], 0.95),
        "whole_p50": _pct(stats["wholes"], 0.5), "whole_p95": _pct(stats["wholes"], 0.95),
        "check_p50_ms": _pct(costs, 0.5) * 1000, "check_p99_ms": _pct(costs, 0.99) * 1000,
    }


async def _chat(pid: str, lang: str, setting: str, server: Any, args: argparse.Namespace, data: Path,
                stats: dict[str, Any]) -> None:
    import tomli_w

    from bot.app import App
    from bot.checks.defects import DefectScan, known_words, language_of
    from core.config import load_config
    from core.messages import Incoming

    data.mkdir(parents=True)
    base_url = args.base_url or server.base_url
    cfg = {
        "bot": {"data_dir": str(data), "default_persona": pid, "rate_limit_per_minute": 1000},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(data / "imported")},
        "memory": {"backend": "sqlite"},
        "knowledge": {"enabled": False},
        "pacing": {"enabled": False},
        # generous: on a busy machine a slow server is not what is measured (a timeout would answer offline)
        "llm": {"base_url": base_url, "request_timeout": 600.0, "deadline": 600.0, "first_token_timeout": 600.0},
    }
    if not args.base_url:
        cfg["llm"]["context_tokens"] = args.n_ctx
    (data / "config.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    async with App.open(load_config(data / "config.toml")) as app:
        persona = app.personas.get(pid)
        _record_streams(app.model, persona, setting == "group", stats["streams"])
        for turn, text in enumerate(CHATS[pid][lang][: args.turns]):
            start = time.monotonic()
            first: list[float] = []
            shown: list[str] = []

            async def sink(delta: str, first: list[float] = first, shown: list[str] = shown,
                           start: float = start) -> None:
                if not first and delta.strip():
                    first.append(time.monotonic() - start)
                shown.append(delta)

            direct = setting == "private"
            who = f"bench-{pid}-{lang}"  # in the conversation key, so the log's defect lines tell the chats apart
            msg = Incoming("test", who, who, "Alice", text, is_direct=direct, mentions_bot=not direct)
            mark = server.mark() if server is not None else 0
            reply = await app.chain.handle(msg, Recorder(partial=sink))
            stats["wholes"].append(time.monotonic() - start)
            stats["firsts"].extend(first[:1])
            hit = server.prefix_hits(mark)[:1] if server is not None else []  # the reply's own request (retries after)
            if turn:  # between consecutive replies of one chat
                stats["hits"].extend(hit)
            await app.background.drain()  # the user takes a moment: summaries and facts run in between
            said = "".join(shown).strip() or (reply.text if reply else "")
            stats["replies"][lang] += 1
            stats["own"][lang] += bool(reply and reply.mode == "model")
            stats["lengths"].append(len(said))
            conversation = language_of(text, persona.card.language)
            scan = DefectScan(conversation, persona.length(not direct, conversation).max,
                              known_words([text, "Alice", persona.name, *persona.card.nickname, *persona.card.aliases]))
            defect = scan.scan(said, final=True) if reply and reply.mode == "model" else None  # example lines are the card's
            stats["shown"] += defect is not None
            if args.verbose:
                mode = reply.mode if reply else "none"
                cached = f" cached {hit[0][0]}/{sum(hit[0])}" if hit else ""
                print(f"[{setting} {pid} {lang} {mode} {defect}{cached}] {text} -> {said!r}", flush=True)


def _record_streams(model: Any, persona: Any, group: bool, into: list[dict[str, Any]]) -> None:
    """Keep each request's raw deltas (and what the check is given), to time the check alone afterwards."""
    stream = model.stream

    def recording(messages: Any, **kw: Any) -> Any:
        async def gen() -> Any:
            deltas: list[str] = []
            into.append({"persona": persona.id, "group": group, "message": messages[-2].content if len(messages) > 1
                         else "", "deltas": deltas, "reply": kw.get("priority", "reply") == "reply"})
            async for delta in stream(messages, **kw):
                deltas.append(delta)
                yield delta
        return gen()

    model.stream = recording


def _check_costs(streams: list[dict[str, Any]], record: Path | None) -> list[float]:
    """CPU seconds the whole reply check (cleaning, leaks, defects) takes per reply, replayed delta by delta."""
    from bench.check import replay
    from persona.library import PersonaLibrary

    library = PersonaLibrary([ROOT / "persona"])
    replies = [s for s in streams if s["reply"] and s["deltas"]]
    if record is not None:
        with record.open("a", encoding="utf-8") as f:
            for s in replies:
                f.write(json.dumps({k: s[k] for k in ("persona", "group", "message", "deltas")}, ensure_ascii=False) + "\n")
    return [min(replay(library.get(s["persona"]), s["message"], s["deltas"], s["group"])[0] for _ in range(3))
            for s in replies]
