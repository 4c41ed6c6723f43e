"""`python -m bench memory --locomo PATH`: real long two-person talk, overheard in a QQ group, then asked about.

Each LoCoMo conversation (snap-research/locomo, CC BY-NC 4.0: read from PATH, never stored here) is
replayed into a fresh `python -m bot run --platform qq` over OneBot v11: every turn an unaddressed
group message from its speaker, with its session's date as the message time (OneBot `time`). Then
a member new to the group asks each question of categories 1-4 with an @. What reached the model
is read from the local OpenAI-compatible server's request log: a question's evidence is recalled
when every evidence turn of it is in the prompt that answers it (the turn's first 60 characters:
shown whole). `evidence_told` also counts a turn one of whose sentences (five words or more) the
prompt shows, as a timeline or profile item does; the floors are on the first measure.

PATH is the dataset's locomo10.json, its zip, or the folder of per-conversation files (30.json).
The conversations run one after another, each in its own group.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from bench import memory as memory_bench
from bench.load import pct, redis_prefix
from bench.qq import shipped_config
from core.serving import ServerProfile
from tests.qq.onebot_impl import text as segment
from tests.support.bot_process import BotProcess, Recorder
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port
from tests.support.requests import is_background

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
TOKEN = "bench-token"
SELF_ID = "10000"
GAP = 30.0  # seconds between two turns of one session
PROBE = 60  # characters of a turn looked for in a prompt (recalled lines may be cut after that)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
REPLY = "Hmm, let me think about that."
SUMMARY = "Two friends catch up in the group."
HOLO_EN = {  # the synthetic bench's English Holo, in a group of people of its own
    **memory_bench.HOLO_EN,
    "description": "{{char}} is the Wise Wolf of Yoitsu, a wolf deity centuries old who takes the form of a young "
                   "woman with wolf ears and a fine tail.",
    "scenario": "{{char}} idles in a busy group chat and listens to its members.",
}


@dataclass(frozen=True)
class Line:
    speaker: str
    text: str
    dia_id: str
    at: float


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: tuple[str, ...]


@dataclass
class Talk:
    id: str
    speakers: tuple[str, str]
    lines: list[Line]
    questions: list[Question]


@dataclass
class Scores:
    hits: dict[int, list[bool]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    told: dict[int, list[bool]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})  # whole, or by a sentence
    sections: dict[str, list[float]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    replay_s: float = 0.0
    embed_wait_s: float = 0.0
    unanswered: int = 0

    def recall(self, category: int | None = None, told: bool = False) -> float:
        """Share of questions whose evidence all reached the prompt (one category, or all); `told`: whole or as a sentence."""
        hits = self.told if told else self.hits
        every = hits[category] if category else [h for v in hits.values() for h in v]
        return sum(every) / len(every) if every else float("nan")


def _date(text: str) -> float:
    """"4:04 pm on 20 January, 2023" as epoch seconds (UTC)."""
    stamp = datetime.strptime(" ".join(text.split()), "%I:%M %p on %d %B, %Y")
    return stamp.replace(tzinfo=UTC).timestamp()


def _samples(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, sample) for each conversation at `path`: locomo10.json, its zip, or a folder of <id>.json."""
    if path.is_dir():
        for file in sorted(path.rglob("*.json")):
            yield file.stem, json.loads(file.read_text(encoding="utf-8"))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            for name in sorted(z.namelist()):
                if name.endswith(".json"):
                    data = json.loads(z.read(name))
                    yield from ([(str(s.get("sample_id", "")).removeprefix("conv-"), s) for s in data]
                                if isinstance(data, list) else [(Path(name).stem, data)])
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        for sample in data if isinstance(data, list) else [data]:
            yield str(sample.get("sample_id", path.stem)).removeprefix("conv-"), sample


def load(path: Path, ids: list[str]) -> list[Talk]:
    """The chosen conversations, turns dated by session, questions of categories 1-4."""
    found = {i: s for i, s in _samples(path) if i in ids}
    missing = [i for i in ids if i not in found]
    if missing:
        raise SystemExit(f"error: conversations {', '.join(missing)} are not in {path}")
    talks = []
    for ident in ids:
        sample = found[ident]
        conv = sample.get("conversation", sample)
        lines = []
        n = 1
        while f"session_{n}" in conv:
            start = _date(conv[f"session_{n}_date_time"])
            lines += [Line(t["speaker"], t["text"], t["dia_id"], start + i * GAP) for i, t in enumerate(conv[f"session_{n}"])]
            n += 1
        questions = [Question(q["question"], int(q["category"]), tuple(q.get("evidence") or ()))
                     for q in sample["qa"] if int(q["category"]) in CATEGORIES]
        talks.append(Talk(ident, (conv["speaker_a"], conv["speaker_b"]), lines, questions))
    return talks


def _squash(text: str) -> str:
    return " ".join(text.split())


def _evidence_id(raw: str) -> str:
    """An evidence id as the turns name it ("D1:3"); the dataset writes a few with stray spaces or colons."""
    m = re.match(r"D:?(\d+):(\d+)", raw.replace(" ", ""))
    return f"D{m.group(1)}:{m.group(2)}" if m else raw


def _told(text: str, shown: str) -> bool:
    """Whether one of the turn's sentences of five words or more is in the prompt (as a timeline or profile item shows it)."""
    return any(_squash(part)[:PROBE] in shown for part in _SENTENCE.findall(text) if len(part.split()) >= 5)


def _sections(body: dict[str, Any]) -> dict[str, float]:
    """Tokens of each part of a reply prompt, as the server would count them."""
    count = ServerProfile().count
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    note = str(messages[last_user - 1]["content"]) if messages[last_user - 1]["role"] == "system" else ""
    earlier = [str(m["content"]) for m in messages[1 : last_user - 1] if m["role"] == "system"]
    out = {"stable": float(count(str(messages[0]["content"]))),
           "window": float(sum(count(str(m["content"])) for m in messages[1:last_user] if m["role"] != "system")),
           "earlier_notes": float(sum(count(t) for t in earlier)),
           "prompt": float(sum(count(str(m["content"])) for m in messages))}
    memory = 0.0
    for text in [note, *earlier]:
        for part in re.split(r"\n\n(?=【)", text):
            m = re.match(r"【(.+?)】", part)
            if m and not part.startswith(("【聊天记录摘录】", "【摘录完】")):
                name = "note:" + re.sub(r"\W+", "_", m.group(1).lower()).strip("_")
                if text is note:
                    out[name] = out.get(name, 0.0) + count(part)
                memory += count(part)
    out["memory_sections"] = memory
    return out


async def _ask(srv: FakeOpenAI, impl: Recorder, talk: Talk, group: int, asker: int, when: float,
               q: Question, mid: int) -> dict[str, Any] | None:
    """Ask one question with an @; the reply request that carries it (None: it never reached the model)."""
    seen = len(srv.requests)
    event = impl.group_message([{"type": "at", "data": {"qq": SELF_ID}}, segment(" " + q.text)],
                               group_id=group, user_id=asker, message_id=mid, card="Newcomer")
    event["time"] = int(when)
    await impl.push(event)
    deadline = time.monotonic() + 180
    wanted = _squash(q.text)
    while time.monotonic() < deadline:
        for body in list(srv.requests)[seen:]:
            if is_background(body):
                continue
            users = [str(m["content"]) for m in body["messages"] if m["role"] == "user"]
            if users and wanted in _squash(users[-1]):
                return body
        await asyncio.sleep(0.02)
    return None


def _sample(text: str, name: str) -> float:
    """One sample of a Prometheus text page (0 when absent)."""
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def _settled(metrics_port: int, pushed: int, limit: float) -> tuple[float, float]:
    """Wait (at most `limit` s) until the bot took every message pushed, then until it embedded what it overheard.

    The seconds until each. What the character overhears is indexed and embedded in the background;
    a bot that ran for weeks would have done so long before anyone asked, so the questions wait here.
    """
    started = time.perf_counter()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    taken_s, zero = 0.0, 0
    async with httpx.AsyncClient(timeout=10) as client:
        while time.perf_counter() - started < limit and zero < 2:
            page = (await client.get(url)).text
            taken = _sample(page, 'bot_messages_in_total{platform="qq"}') >= pushed
            taken_s = taken_s or (time.perf_counter() - started if taken else 0.0)
            zero = zero + 1 if taken and _sample(page, "bot_memory_turns_unembedded") == 0 else 0
            await asyncio.sleep(0.5 if not taken else 1.0)
    return taken_s, time.perf_counter() - started - taken_s


async def _conversation(srv: FakeOpenAI, impl: Recorder, talk: Talk, scores: Scores, verbose: bool,
                        metrics_port: int, embed_wait: float, pushed: int) -> None:
    """Replay one conversation as group messages, let the bot settle, then ask its questions one after another."""
    number = int(re.sub(r"\D", "", talk.id) or 0)
    group = 700_000 + number
    users = {talk.speakers[0]: 300_000 + 10 * number, talk.speakers[1]: 300_001 + 10 * number}
    by_id = {line.dia_id: line for line in talk.lines}
    started = time.perf_counter()
    for i, line in enumerate(talk.lines):
        event = impl.group_message([segment(line.text)], group_id=group, user_id=users[line.speaker],
                                   message_id=number * 100_000 + i, card=line.speaker)
        event["time"] = int(line.at)
        await impl.push(event)
    sent = time.perf_counter() - started
    taken, scores.embed_wait_s = await _settled(metrics_port, pushed + len(talk.lines), embed_wait)
    scores.replay_s = sent + taken  # until the bot took the last turn (its index and vectors may follow)
    when = talk.lines[-1].at + 86_400
    for n, q in enumerate(talk.questions):
        body = await _ask(srv, impl, talk, group, 300_002 + 10 * number, when + 60 * n, q, number * 100_000 + 50_000 + n)
        if body is None:
            scores.unanswered += 1
            scores.hits[q.category].append(False)
            scores.told[q.category].append(False)
            continue
        shown = _squash("\n".join(str(m["content"]) for m in body["messages"]))
        ids = [_evidence_id(e) for e in q.evidence if _evidence_id(e) in by_id]
        missing = [e for e in ids if _squash(by_id[e].text)[:PROBE] not in shown]
        scores.hits[q.category].append(bool(ids) and not missing)
        scores.told[q.category].append(bool(ids) and all(_told(by_id[e].text, shown) for e in missing))
        for name, value in _sections(body).items():
            scores.sections.setdefault(name, []).append(value)
        if missing and verbose:
            scores.misses.append(f"{talk.id} [{CATEGORIES[q.category]}] {q.text} -- missing {', '.join(missing)}")


def _responder(body: dict[str, Any]) -> Script:
    """The model: a fixed reply, a generic summary, no facts (the bench measures what recall finds)."""
    if not is_background(body):
        return Script(text=REPLY)
    first = str(body["messages"][0]["content"])
    return Script(text="[]" if first.startswith(("从下面", "From what")) else SUMMARY)


async def run(path: Path, ids: list[str], changes: list[tuple[str, str, Any]], verbose: bool,
              python: str = sys.executable, embed_wait: float = 600.0) -> dict[str, Any]:
    """Replay and question every chosen conversation in one bot process (run by `python`); the numbers."""
    talks = load(path, ids)
    scores = {t.id: Scores() for t in talks}
    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="rp-bench-locomo-") as tmp, FakeOpenAI() as srv, redis_prefix() as prefix:
        folder = Path(tmp)
        srv.responder = _responder
        card = folder / "personas" / "holo_en"
        card.mkdir(parents=True)
        (card / "card.toml").write_text(tomli_w.dumps(HOLO_EN), encoding="utf-8")
        config = shipped_config(folder, srv.base_url, prefix, [
            ("bot", "default_persona", "holo_en"), ("bot", "rate_limit_per_minute", 1_000_000),
            ("bot", "merge_bursts", False), ("bot", "busy_notice_seconds", 0.0), ("bot", "max_queue_seconds", 3600.0),
            ("personas", "dirs", [str(Path(__file__).resolve().parent.parent / "persona"), str(folder / "personas")]),
            ("knowledge", "enabled", False), ("pacing", "enabled", False),
            ("llm", "first_token_timeout", 600.0), ("llm", "deadline", 600.0),
            ("metrics", "enabled", True), ("metrics", "port", metrics_port), *changes])
        settings = tomllib.loads(config.read_text(encoding="utf-8"))
        bot = BotProcess(config, TOKEN, {"TZ": "UTC", "BOT_BOT__LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")},
                         python)
        try:
            await bot.start()
            impl = Recorder(bot.url, SELF_ID, TOKEN)
            await impl.open(keepalive=False)  # a bot busy with a replay may answer pings late
            try:
                started = time.perf_counter()
                pushed = 0
                for talk in talks:
                    await _conversation(srv, impl, talk, scores[talk.id], verbose, metrics_port, embed_wait, pushed)
                    pushed += len(talk.lines) + len(talk.questions)
                total = time.perf_counter() - started
            finally:
                await impl.close()
        finally:
            await bot.stop()
            await bot.close()
            if os.environ.get("BENCH_BOT_LOG"):  # the bot's log, kept (the rest of the folder goes)
                Path(os.environ["BENCH_BOT_LOG"]).write_text(bot.output(), encoding="utf-8")
    return _numbers(talks, scores, total, settings["memory"])


def _numbers(talks: list[Talk], scores: dict[str, Scores], total: float, memory: dict[str, Any]) -> dict[str, Any]:
    every = Scores()
    for s in scores.values():
        for c in CATEGORIES:
            every.hits[c] += s.hits[c]
            every.told[c] += s.told[c]
        for name, values in s.sections.items():
            every.sections.setdefault(name, []).extend(values)
        every.misses += s.misses
        every.unanswered += s.unanswered
    out: dict[str, Any] = {"evidence_recall": every.recall()}
    out |= {f"recall_{name}": every.recall(c) for c, name in CATEGORIES.items()}
    # the same, counting an evidence turn also when one of its sentences is shown (a timeline or profile item)
    out["evidence_told"] = every.recall(told=True)
    out |= {f"told_{name}": every.recall(c, told=True) for c, name in CATEGORIES.items()}
    for t in talks:
        s = scores[t.id]
        out[f"conv {t.id}"] = (f"overall {s.recall():.3f}; " + ", ".join(
            f"{name} {s.recall(c):.3f} ({len(s.hits[c])})" for c, name in CATEGORIES.items())
            + f"; {len(t.lines)} turns replayed in {s.replay_s:.1f} s, embedded {s.embed_wait_s:.0f} s later")
    for name in sorted(every.sections):
        values = every.sections[name]
        out[f"tokens {name}"] = f"p50 {pct(values, 0.5):.0f}  p90 {pct(values, 0.9):.0f}"
    out["questions"] = sum(len(v) for v in every.hits.values())
    out["unanswered"] = every.unanswered
    out["wall_s"] = total
    out["memory_config"] = ", ".join(f"{k}={memory[k]}" for k in sorted(memory) if "token" in k or "recall" in k)
    out["misses"] = every.misses
    return out


def report(result: dict[str, Any]) -> None:
    """Print the numbers and the issue's floors."""
    for key, value in result.items():
        if key != "misses":
            print(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
    for miss in result["misses"]:
        print(f"{'missed':>24}: {miss}")
    p90 = float(result.get("tokens memory_sections", "p50 0  p90 0").split()[-1])
    floors = {"evidence recall >= 0.85": result["evidence_recall"] >= 0.85,
              "multi-hop >= 0.6": result["recall_multi-hop"] >= 0.6,
              "temporal >= 0.85": result["recall_temporal"] >= 0.85,
              "open-domain >= 0.6": result["recall_open-domain"] >= 0.6,
              "single-hop >= 0.9": result["recall_single-hop"] >= 0.9,
              "memory sections p90 <= 1500 tokens": p90 <= 1500}
    for name, ok in floors.items():
        print(f"floor {name}: {'met' if ok else 'NOT met'}")
