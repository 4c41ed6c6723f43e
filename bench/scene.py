"""`python -m bench scene`: 3 characters in each of 20 groups, 500 human messages, through the real App.

Each group is a scene of horo, yexiu and wukong on Redis. Each human message arrives three times (the
copy every QQ account receives), is taken once (`Scenes.first_copy`) and runs its round: a third of
the messages @ one character, a third name two, a third name nobody (a draw under the reply chance).
The scripted model sometimes names the other characters, so they answer each other up to [scene]
max_bot_turns. Groups run at once; within a group, the next message comes when the round is over.

Numbers: round latency (message in to last line out) p50/p95; character lines per human message
(mean, max); duplicates (a character answering one human message twice, or a copy handled);
pipeline overhead per human message: the round's wall time less its time waiting on the model (its
slot queue included), and that shared by the round's lines; the process's CPU time per line.

The overhead is mostly the event loop's queue: every await of a round waits behind the other
groups' work, so it grows with the lines per second offered and the machine's load. Compare it with
`bench pipeline` at the same pace (`--llm-latency-ms 300 --concurrency 4`), run at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import ModelProcess, Responder, mark, pct, redis_prefix, report, seqs_in, write_config
from bench.pipeline import _WAITED, TimedModel
from bot.app import App
from bot.pipeline.stages.generate import Generate
from core.config import load_config
from core.loop import run as run_loop
from core.messages import Incoming, Reply
from core.outlet import ClipTask
from tests.support.openai_server import Script
from tests.support.requests import is_background

CAST = ["horo", "yexiu", "wukong"]
ACCOUNTS = {"horo": "10001", "yexiu": "10002", "wukong": "10003"}
LINES = {"赫萝": "呵呵，咱说嘛，", "叶修": "行吧，打完这把再说，", "孙悟空": "俺老孙来也！", "?": "嗯，"}
NAMED = [("赫萝", "叶修"), ("叶修", "大圣"), ("大圣", "赫萝")]


class SceneResponder(Responder):
    """Replies that echo the message's number; one in three calls on every other character by name."""

    def __call__(self, body: dict[str, Any]) -> Script:
        """A Script for this request."""
        if is_background(body):
            return super().__call__(body)
        said = [str(m["content"]) for m in body["messages"] if m["role"] == "user"]
        numbers = next(("、".join(str(n) for n in found) for text in reversed(said) if (found := seqs_in(text))), "?")
        system = str(body["messages"][0]["content"])
        me = next((name for name in ("赫萝", "叶修", "孙悟空") if name in system), "?")
        calls = " 赫萝、叶修、大圣，你们说呢？" if len(body["messages"]) % 3 == 0 else ""
        text = f"{LINES[me]}第{numbers}句我听见了。{calls}"
        return Script(text=text, delay=self.latency / 3, chunk_delay=self.latency * 2 / 3 / (len(text) // 4 + 3))


class Said:
    """A character's outlet in the bench: keeps (group, seq, persona, text) of each line it posts."""

    def __init__(self, lines: list[tuple[int, int, str, str]], group: int, seq: int):
        self.lines, self.group, self.seq = lines, group, seq

    def placed(self, position: int) -> None:
        """Nothing to show."""

    async def partial(self, text: str) -> None:
        """Nothing to show."""

    async def send(self, reply: Reply) -> None:
        """The line, kept."""
        self.lines.append((self.group, self.seq, reply.persona_id, reply.text))

    async def react(self, emoji: str) -> None:
        """Nothing to show."""

    async def voice(self, clip: ClipTask) -> None:
        """No voice in the bench."""
        clip.cancel()


def register(sub: Any) -> None:
    """Add the `scene` subcommand."""
    p = sub.add_parser("scene", help="several characters per group: turn-taking, dedup and overhead")
    p.add_argument("--groups", type=int, default=20)
    p.add_argument("--messages", type=int, default=500, help="human messages in all")
    p.add_argument("--llm-latency-ms", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=8, help="[llm] max_concurrency")
    p.add_argument("--max-bot-turns", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the bench and print the numbers."""
    result = run_loop(run(args.groups, args.messages, args.llm_latency_ms, args.concurrency, args.max_bot_turns))
    floors = {
        f"lines per message <= {args.max_bot_turns}": result["lines_max"] <= args.max_bot_turns,
        "duplicates == 0": result["duplicates"] == 0,
        "overhead p50 <= 10 ms": result["overhead_p50_ms"] <= 10,
    }
    report(result, floors, args.json)
    return 0


async def run(groups: int, messages: int, latency_ms: float, concurrency: int, max_turns: int) -> dict[str, Any]:
    """The numbers of one run."""
    with tempfile.TemporaryDirectory(prefix="rp-bench-") as tmp, \
            ModelProcess(latency_ms, SceneResponder) as srv, redis_prefix() as prefix:
        config = write_config(Path(tmp), srv.base_url, prefix, concurrency, knowledge={"enabled": False},
                              llm={"context_tokens": 8192},
                              bot={"reply_chance": 0.5, "reply_cooldown_seconds": 0.0},
                              scene={"max_bot_turns": max_turns})
        settings = load_config(config, env_file=Path(tmp) / "none")
        async with App.open(settings) as app:
            generate = next(s for s in app.chain.stages if isinstance(s, Generate))
            assert generate.model is not None
            generate.model = TimedModel(generate.model)
            started, cpu = time.perf_counter(), time.process_time()
            rounds, lines, copies = await _drive(app, groups, messages)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    said = Counter((g, seq, pid) for g, seq, pid, _ in lines)
    per_message = Counter((g, seq) for g, seq, _, _ in lines)
    counts = [per_message.get((g, seq), 0) for g, seq, _, _ in rounds]
    return {
        "human_messages": len(rounds),
        "character_lines": len(lines),
        "lines_per_message": len(lines) / max(1, len(rounds)),
        "lines_max": max(counts, default=0),
        "duplicates": sum(n - 1 for n in said.values() if n > 1) + copies,
        "latency_p50_ms": pct([1000 * w for *_, w, _ in rounds], 0.5),
        "latency_p95_ms": pct([1000 * w for *_, w, _ in rounds], 0.95),
        "overhead_p50_ms": pct([1000 * (w - m) for *_, w, m in rounds], 0.5),
        "overhead_p95_ms": pct([1000 * (w - m) for *_, w, m in rounds], 0.95),
        # a round's overhead shared by its lines: what one line costs beside the model, as `bench pipeline` counts a message
        "overhead_per_line_p50_ms": pct([1000 * (w - m) / n for (*_, w, m), n in zip(rounds, counts, strict=True) if n], 0.5),
        "lines_per_s": len(lines) / wall,
        "cpu_ms_per_line": 1000 * cpu / max(1, len(lines)),
    }


async def _drive(app: App, groups: int, messages: int) -> tuple[list[tuple[int, int, float, float]], list[tuple[int, int, str, str]], int]:
    """Every group's messages in turn: (group, seq, round wall, model wait) per message, the lines
    said (group, seq, persona, text), and how many copies were handled beyond the first."""
    rounds: list[tuple[int, int, float, float]] = []
    lines: list[tuple[int, int, str, str]] = []
    extra = 0

    async def group(g: int) -> None:
        nonlocal extra
        for seq in range(g, messages, groups):
            kind, to = seq % 3, ""
            if kind == 0:
                to = CAST[seq % len(CAST)]
                text = f"你好呀 {mark(g, seq)}"
            elif kind == 1:
                a, b = NAMED[seq % len(NAMED)]
                text = f"{a}和{b}，今天过得怎样？ {mark(g, seq)}"
            else:
                text = f"今天群里好热闹 {mark(g, seq)}"


            copies = [Incoming("qq", f"{g}", f"2{g:04d}", f"群友{g}", text, message_id=str(seq), bot_id=ACCOUNTS[pid])
                      for pid in CAST]
            waited = [0.0]
            _WAITED.set(waited)
            t = time.perf_counter()
            taken = [m for m in copies if app.scenes.first_copy(m)]
            extra += len(taken) - 1
            await app.scenes.handle(taken[0], CAST, {pid: Said(lines, g, seq) for pid in CAST}, to)
            rounds.append((g, seq, time.perf_counter() - t, waited[0]))

    await asyncio.gather(*(group(g) for g in range(groups)))
    return rounds, lines, extra
