"""`python -m bench check`: what the reply check costs per reply, over a few thousand replies.

Replays replies delta by delta, as a server streams them, through the whole check the generate
stage runs (cleaning, leaks of the hidden prompt, invented speakers, loops, runs of marks, the other
language, overruns): the SmolLM2 streams that `python -m bench model --record FILE` kept
(bench/data/smollm2_streams.jsonl by default), and generated replies of every kind up to the reply
cap and past it (clean Chinese and English, loops, runs of one mark, the other language, overruns),
for each shipped character, in private chats and groups. Prints the CPU time per reply (this
thread only, the least of `--repeat` runs: other work on a shared machine only adds time), p50 /
p99 / max, per kind, and the wall time beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "bench" / "data" / "smollm2_streams.jsonl"
_WORD_LIST = """apple wolf merchant road north inn wine tail harvest town price river friend winter purse night
moon wheat field village coin silver copper trade market cart horse rain snow forest mountain fur ear smile
laugh story song bread cheese honey pepper salt ship harbor letter map compass lantern fire candle blanket bed
morning evening sun wind cloud storm bridge gate wall church festival dance music fiddle drum guard soldier
king queen knight sword shield armor helmet book paper ink quill secret promise lie truth memory dream fear
hope joy anger sorrow patience wisdom fool clever quick slow warm cold bright dark sweet bitter old young
always never often rarely perhaps surely gladly slowly loudly quietly remember forget bring carry follow
lead watch listen answer ask count sell buy borrow lend travel rest sleep wake eat drink"""
_WORDS = tuple(_WORD_LIST.split())


@dataclass(frozen=True, slots=True)
class Stream:
    """One reply as it arrived: what it answered, in which setting, and its deltas."""

    kind: str  # "recorded", or what a generated reply is: clean, loop, symbols, language, overrun
    persona: str
    group: bool
    message: str
    deltas: tuple[str, ...]


def register(sub: Any) -> None:
    """Add `check`."""
    p = sub.add_parser("check", help="the reply check's own cost per reply (recorded SmolLM2 streams + generated)")
    p.add_argument("--replies", type=int, default=3000, help="generated replies (the recorded ones come on top)")
    p.add_argument("--recorded", type=Path, default=RECORDED, help="streams kept by `bench model --record`")
    p.add_argument("--repeat", type=int, default=3, help="runs per reply; the least is kept (other work only adds time)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay every stream, print the table."""
    from persona.library import PersonaLibrary

    library = PersonaLibrary([ROOT / "persona"])
    streams = list(recorded(args.recorded)) + list(generated(library, args.replies))
    costs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for stream in streams:
        runs = [replay(library.get(stream.persona), stream.message, stream.deltas, stream.group)
                for _ in range(max(1, args.repeat))]
        cost = (min(c for c, _ in runs), min(w for _, w in runs))
        costs[stream.kind].append(cost)
        costs["all"].append(cost)
    rows = {kind: _row(values) for kind, values in sorted(costs.items())}
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"reply check per reply: {len(streams)} replies ({len(costs.get('recorded', []))} recorded from SmolLM2)")
    print("| replies | n | chars p50 / max | CPU p50 / p99 / max (ms) | wall p50 / p99 (ms) |")
    print("|---|---|---|---|---|")
    lengths = defaultdict(list)
    for stream in streams:
        size = sum(len(d) for d in stream.deltas)
        lengths[stream.kind].append(size)
        lengths["all"].append(size)
    for kind, r in rows.items():
        sizes = sorted(lengths[kind])
        print(f"| {kind} | {r['n']} | {sizes[len(sizes) // 2]} / {sizes[-1]} | {r['cpu_p50']:.3f} / {r['cpu_p99']:.3f} / "
              f"{r['cpu_max']:.3f} | {r['wall_p50']:.3f} / {r['wall_p99']:.3f} |")
    return 0


def replay(persona: Any, message: str, deltas: Sequence[str], group: bool,
           hidden: dict[str, Any] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) the whole check takes over one reply, fed delta by delta."""
    from bot.checks.defects import DefectScan, known_words, language_of
    from bot.checks.hygiene import Hidden, ReplyCheck

    hidden = _HIDDEN if hidden is None else hidden
    if persona.id not in hidden:
        hidden[persona.id] = Hidden(persona)
    speakers = ["Alice", persona.card.user_alias, "用户", "User", "user"]
    known = known_words([message, *speakers, persona.name, *persona.card.nickname, *persona.card.aliases])
    cpu, wall = time.thread_time(), time.perf_counter()
    language = language_of(message, persona.card.language)
    scan = DefectScan(language, persona.length(group, language).max, known)
    check = ReplyCheck(persona, hidden[persona.id], message, speakers, scan)
    for delta in deltas:
        check.feed(delta)
        if check.stopped:
            break
    check.finish()
    check.result()
    return time.thread_time() - cpu, time.perf_counter() - wall


_HIDDEN: dict[str, Any] = {}


def recorded(path: Path) -> Iterator[Stream]:
    """The reply streams `bench model --record` kept (none when the file is missing)."""
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            yield Stream("recorded", r["persona"], r["group"], r["message"], tuple(r["deltas"]))


def generated(library: Any, n: int, seed: int = 7) -> Iterator[Stream]:
    """`n` replies of every kind, up to twice the card's longest reply, in token-sized pieces."""
    rng = random.Random(seed)
    kinds = ("clean", "clean", "loop", "symbols", "language", "overrun")
    ids = sorted(library.ids())
    for i in range(n):
        persona = library.get(ids[i % len(ids)])
        group, lang, kind = rng.random() < 0.5, rng.choice(("zh", "en")), kinds[i % len(kinds)]
        most = persona.length(group, lang).max
        size = most * 2 if kind == "overrun" else rng.randint(most // 3, most)
        text = _text(rng, lang, size)
        if kind == "loop":
            text = text[: size // 3] + _text(rng, lang, 30)[:24] * 12
        elif kind == "symbols":
            text = text[: size // 2] + rng.choice("；！。~…?") * 30
        elif kind == "language":
            text = text[: size // 3] + _text(rng, "en" if lang == "zh" else "zh", size)
        message = "你今天过得怎么样？" if lang == "zh" else "How was your day today?"
        yield Stream(kind, persona.id, group, message, tuple(_pieces(rng, text, lang)))


def _text(rng: random.Random, lang: str, size: int) -> str:
    out: list[str] = []
    while sum(len(s) for s in out) < size:
        if lang == "zh":
            out.append("".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(rng.randrange(6, 22)))
                       + rng.choice("。！？，"))
        else:
            words = [rng.choice(_WORDS) for _ in range(rng.randrange(5, 16))]
            out.append(" ".join(words).capitalize() + rng.choice((".", "!", "?", ",")) + " ")
    return "".join(out)[:size]


def _pieces(rng: random.Random, text: str, lang: str) -> Iterator[str]:
    """Token-sized deltas: 1-3 characters of Chinese, 2-7 of English."""
    low, high = (1, 3) if lang == "zh" else (2, 7)
    i = 0
    while i < len(text):
        step = rng.randint(low, high)
        yield text[i : i + step]
        i += step


def _row(values: list[tuple[float, float]]) -> dict[str, float]:
    cpu = sorted(c for c, _ in values)
    wall = sorted(w for _, w in values)

    def pct(xs: list[float], q: float) -> float:
        return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]

    return {"n": len(values), "cpu_p50": pct(cpu, 0.5), "cpu_p99": pct(cpu, 0.99), "cpu_max": 1000 * cpu[-1],
            "wall_p50": pct(wall, 0.5), "wall_p99": pct(wall, 0.99)}
