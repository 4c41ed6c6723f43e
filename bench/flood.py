"""`python -m bench intake` and `python -m bench flood`: what an incoming QQ event costs the bot process.

Both start a fresh `python -m bot run --platform qq` on the shipped config.toml (as `bench qq` does:
only places, the character 孙悟空 and `--set` changed) with the scripted model server answering in
`--llm-latency-ms`, and are its OneBot v11 implementation. The bot's CPU time is read from
/proc/<pid>/task/*/schedstat (nanoseconds, every thread) every half second; CPU per event is the CPU
a window used over the events pushed in it, and its p50 is taken over the windows of a phase.

intake: group chatter nobody addresses to the character, from 20 members in 5 groups, at `--rate`
messages/s for `--seconds`, then a burst of `--burst` such messages at once (its CPU per event: until
the process is idle again).

flood: 10 groups and 3 private chats each say something to the character every 2 s for `--seconds`;
first alone, then while one member floods an 11th group at `--rate` messages/s without @, then with
@. For the others: p95 latency (message to the first message answering it), the share the model
answered; for each flood, the CPU per flood message (what the phase used less what the others used
alone, over the flood's messages).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import ModelProcess, echoed, ingest, mark, pct, redis_prefix, report
from bench.qq import SELF_ID, TOKEN, _change, shipped_config
from core.loop import run as run_loop
from tests.qq.onebot_impl import text
from tests.support.bot_process import BotProcess, Recorder

WINDOW = 0.5  # seconds between two readings of the bot's CPU time
CHATTER = ["今天吃什么好呢", "刚下班，累死了", "有人看昨晚的球赛吗", "这周末去爬山吧", "哈哈哈笑死我了",
           "外面下雨了，记得带伞", "我家猫又把杯子打翻了", "明天要早起，先睡了"]


def register(sub: Any) -> None:
    """Add the `intake` and `flood` subcommands."""
    for name, helps in (("intake", "CPU per incoming QQ event: chatter at a steady rate, then a burst"),
                        ("flood", "one member flooding a group while others talk: their latency, CPU per event")):
        p = sub.add_parser(name, help=helps)
        p.add_argument("--rate", type=float, default=50.0, help="messages/s (chatter, or the flooder's)")
        p.add_argument("--seconds", type=float, default=10.0)
        p.add_argument("--llm-latency-ms", type=float, default=300.0)
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="change one key of the shipped config.toml (a TOML value)")
        p.add_argument("--log", type=Path, help="keep the bot's log here")
        p.add_argument("--json", action="store_true")
        if name == "intake":
            p.add_argument("--burst", type=int, default=500, help="chatter messages pushed at once")
        p.set_defaults(func=_intake if name == "intake" else _flood)


def _intake(args: argparse.Namespace) -> int:
    result = run_loop(intake(args.rate, args.seconds, args.burst, args.llm_latency_ms,
                                [_change(s) for s in args.set], args.log))
    report(result, {"chatter CPU/event p50 <= 2 ms": result["chatter_cpu_ms_p50"] <= 2.0}, args.json)
    return 0


def _flood(args: argparse.Namespace) -> int:
    result = run_loop(flood(args.rate, args.seconds, args.llm_latency_ms, [_change(s) for s in args.set], args.log))
    floors = {"others all by the model": min(result["others_by_model_plain"], result["others_by_model_at"]) >= 1.0,
              "others p95 < 2 x quiet": max(result["others_p95_s_plain"], result["others_p95_s_at"])
              < 2 * result["others_p95_s_quiet"],
              "intake CPU/event p50 <= 2 ms": max(result["flood_cpu_ms_p50_plain"], result["flood_cpu_ms_p50_at"]) <= 2.0}
    report(result, floors, args.json)
    return 0


class Meter:
    """The bot process's CPU time, read every WINDOW seconds, against the events pushed meanwhile."""

    def __init__(self, pid: int):
        self.pid = pid
        self.events = 0  # the events counted so far (pushes that are not counted leave it alone)

    def cpu(self) -> float:
        """CPU seconds the process's live threads have used."""
        total = 0
        for stat in Path(f"/proc/{self.pid}/task").glob("*/schedstat"):
            with suppress(OSError, ValueError, IndexError):  # a thread that ended meanwhile
                total += int(stat.read_text().split()[0])
        return total / 1e9

    @asynccontextmanager
    async def phase(self) -> AsyncIterator[list[Window]]:
        """Windows taken while the block runs (the events counted by `self.events`)."""
        windows: list[Window] = []
        stop = asyncio.Event()

        async def sample() -> None:
            cpu, events, at = self.cpu(), self.events, time.perf_counter()
            while not stop.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WINDOW)
                now, count, then = self.cpu(), self.events, time.perf_counter()
                windows.append(Window(now - cpu, then - at, count - events))
                cpu, events, at = now, count, then

        task = asyncio.create_task(sample())
        try:
            yield windows
        finally:
            stop.set()
            await task

    async def idle(self, quiet_ms: float = 20.0, limit: float = 120.0) -> float:
        """Wait until a window uses under `quiet_ms` of CPU; the seconds it took."""
        started = time.perf_counter()
        cpu = self.cpu()
        while time.perf_counter() - started < limit:
            await asyncio.sleep(WINDOW)
            now = self.cpu()
            if (now - cpu) * 1000 < quiet_ms:
                break
            cpu = now
        return time.perf_counter() - started


@dataclass(frozen=True)
class Window:
    """What the bot used in one reading's window: CPU seconds, seconds, events counted."""

    cpu: float
    seconds: float
    events: int


def per_event_ms(windows: list[Window], base_per_s: float = 0.0) -> float:
    """The median over windows with events of their CPU milliseconds per event, less `base_per_s`
    CPU seconds a second that the rest of the work used."""
    return pct([1000 * (w.cpu - base_per_s * w.seconds) / w.events for w in windows if w.events > 0], 0.5)


@dataclass
class Pusher:
    """Builds and pushes OneBot events with unique message ids; notes when each was pushed."""

    impl: Recorder
    meter: Meter
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900_000))
    pushed: dict[int, float] = field(default_factory=dict)  # message id -> when

    async def group(self, group: int, user: int, words: str, at: bool = False, count: bool = True) -> int:
        """One group message (with an @ of the bot when `at`; counted as an event when `count`); its id."""
        mid = next(self.ids)
        segments = ([{"type": "at", "data": {"qq": SELF_ID}}] if at else []) + [text(words)]
        await self._push(mid, self.impl.group_message(segments, group_id=group, user_id=user, message_id=mid), count)
        return mid

    async def private(self, user: int, words: str, count: bool = True) -> int:
        """One private message; its id."""
        mid = next(self.ids)
        await self._push(mid, self.impl.private_message(words, user_id=user, message_id=mid), count)
        return mid

    async def _push(self, mid: int, event: dict[str, Any], count: bool) -> None:
        self.pushed[mid] = time.perf_counter()
        self.meter.events += count
        await self.impl.push(event)


@asynccontextmanager
async def bot_for_bench(latency_ms: float, changes: list[tuple[str, str, Any]], keep_log: Path | None
                        ) -> AsyncIterator[tuple[BotProcess, Recorder, Meter]]:
    """A fresh bot on the shipped config, its OneBot side connected, and a meter on its CPU."""
    with tempfile.TemporaryDirectory(prefix="rp-bench-flood-") as tmp, ModelProcess(latency_ms) as model, \
            redis_prefix() as prefix:
        folder = Path(tmp)
        ingest(folder / "data")
        bot = BotProcess(shipped_config(folder, model.base_url, prefix, changes), TOKEN)
        try:
            await bot.start()
            assert bot.proc is not None
            impl = Recorder(bot.url, SELF_ID, TOKEN)
            await impl.open()
            try:
                yield bot, impl, Meter(bot.proc.pid)
            finally:
                await impl.close()
                await bot.stop()
                if keep_log is not None:
                    keep_log.write_text(bot.output(), encoding="utf-8")
        finally:
            await bot.close()


async def _warm_up(pusher: Pusher, meter: Meter) -> None:
    """A few messages of every kind first, so nothing measured pays for a first import or connection."""
    for i in range(3):
        await pusher.group(600_000, 500_000 + i, CHATTER[i])
        await pusher.group(600_001, 500_010 + i, f"悟空，热身第{i}句", at=True)
        await pusher.private(500_020 + i, f"热身第{i}句")
    await asyncio.sleep(3.0)
    await meter.idle()


async def _steady(pusher: Pusher, rate: float, seconds: float, send: Any) -> None:
    """Call `send(i)` `rate` times a second for `seconds`."""
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        await send(i)


async def intake(rate: float, seconds: float, burst: int, latency_ms: float,
                 changes: list[tuple[str, str, Any]], keep_log: Path | None = None) -> dict[str, Any]:
    """CPU per chatter event at a steady rate and in a burst."""
    async with bot_for_bench(latency_ms, changes, keep_log) as (_, impl, meter):
        pusher = Pusher(impl, meter)
        await _warm_up(pusher, meter)
        idle_cpu, warm_replies = meter.cpu(), len(impl.sent)
        await asyncio.sleep(2.0)
        idle_ms_per_s = (meter.cpu() - idle_cpu) * 1000 / 2.0

        async def chatter(i: int) -> None:
            await pusher.group(610_000 + i % 5, 510_000 + i % 20, f"{CHATTER[i % len(CHATTER)]} {i}")

        cpu, events = meter.cpu(), meter.events
        async with meter.phase() as windows:
            await _steady(pusher, rate, seconds, chatter)
            await meter.idle()
        steady_total = (meter.cpu() - cpu) / max(1, meter.events - events)
        cpu, events = meter.cpu(), meter.events
        for i in range(burst):
            await pusher.group(620_000 + i % 10, 520_000 + i % 40, f"{CHATTER[i % len(CHATTER)]} {i}")
        settled = await meter.idle()
        burst_total = (meter.cpu() - cpu) / max(1, meter.events - events)
        replies = len(impl.sent) - warm_replies
    return {
        "chatter_events": int(rate * seconds),
        "chatter_cpu_ms_p50": per_event_ms(windows),
        "chatter_cpu_ms_mean": 1000 * steady_total,
        "burst_events": burst,
        "burst_cpu_ms_mean": 1000 * burst_total,
        "burst_settled_s": settled,
        "idle_cpu_ms_per_s": idle_ms_per_s,
        "replies_to_chatter": replies,
    }


@dataclass
class Others:
    """The 10 groups and 3 private chats that talk to the character while someone floods."""

    pusher: Pusher
    base: int  # group and user numbers of this phase start here
    counted: bool  # their messages count as the meter's events
    asked: dict[int, int] = field(default_factory=dict)  # message id -> sequence number

    async def talk(self, seconds: float) -> None:
        """Each of them says something every 2 s, spread evenly."""
        speakers = 13
        started = time.perf_counter()
        for i in range(int(seconds / 2.0 * speakers)):
            await asyncio.sleep(max(0.0, started + i * 2.0 / speakers - time.perf_counter()))
            who, seq = i % speakers, self.base + i
            words = f" 悟空，这是第{i // speakers}回问你 {mark(who, seq)}"
            if who < 10:
                mid = await self.pusher.group(self.base + who, self.base + 100 + who, words, at=True, count=self.counted)
            else:
                mid = await self.pusher.private(self.base + 100 + who, words.strip(), count=self.counted)
            self.asked[mid] = seq

    def numbers(self, sent: list[tuple[float, dict[str, Any]]]) -> tuple[float, float, int]:
        """p95 latency (s), the share answered by the model, and how many went unanswered."""
        by_seq = {seq: mid for mid, seq in self.asked.items()}
        first: dict[int, float] = {}
        by_model: set[int] = set()
        for at, params in sent:
            segments = params.get("message") or []
            said = "".join(str(s["data"].get("text", "")) for s in segments if s.get("type") == "text")
            quoted = {int(s["data"]["id"]) for s in segments if s.get("type") == "reply"}
            numbers = {n for n in echoed(said) if n in by_seq}
            by_model |= numbers
            for mid in quoted | {by_seq[n] for n in numbers}:
                if mid in self.asked and mid not in first:
                    first[mid] = at
        latencies = [first[mid] - self.pusher.pushed[mid] for mid in first]
        answered_by_model = len(by_model) / len(self.asked) if self.asked else 0.0
        return pct(latencies, 0.95), answered_by_model, len(self.asked) - len(first)


async def flood(rate: float, seconds: float, latency_ms: float, changes: list[tuple[str, str, Any]],
                keep_log: Path | None = None) -> dict[str, Any]:
    """The others' latency and CPU per event: quiet, then with a flood without @, then with @.

    A flood's CPU per event counts the flood's messages only, less the CPU the others' conversations
    used a second when alone (the quiet phase)."""
    result: dict[str, Any] = {}
    async with bot_for_bench(latency_ms, changes, keep_log) as (_, impl, meter):
        pusher = Pusher(impl, meter)
        await _warm_up(pusher, meter)
        quiet_per_s = 0.0
        for phase, base in (("quiet", 100_000), ("plain", 200_000), ("at", 300_000)):
            others = Others(pusher, base, counted=phase == "quiet")
            sent_before = len(impl.sent)

            async def flooder(i: int, base: int = base, phase: str = phase) -> None:
                await pusher.group(base + 50, base + 99, f"刷屏{i} {CHATTER[i % len(CHATTER)]}", at=phase == "at")

            async with meter.phase() as windows:
                talking = asyncio.create_task(others.talk(seconds))
                if phase != "quiet":
                    await _steady(pusher, rate, seconds, flooder)
                await talking
            await _settle(impl, others)
            p95, by_model, unanswered = others.numbers(impl.sent[sent_before:])
            result |= {f"others_p95_s_{phase}": p95, f"others_by_model_{phase}": by_model,
                       f"others_unanswered_{phase}": unanswered}
            if phase == "quiet":
                quiet_per_s = sum(w.cpu for w in windows) / sum(w.seconds for w in windows)
                result["others_cpu_ms_per_message"] = per_event_ms(windows)
            else:
                result[f"flood_cpu_ms_p50_{phase}"] = per_event_ms(windows, quiet_per_s)
                flooded = sum(w.events for w in windows)
                spent = sum(w.cpu - quiet_per_s * w.seconds for w in windows)
                result[f"flood_cpu_ms_mean_{phase}"] = 1000 * spent / flooded if flooded else float("nan")
            await meter.idle()
    return result


async def _settle(impl: Recorder, others: Others, patience: float = 60.0) -> None:
    """Until every one of the others' messages has an answer (or nothing came for `patience` s), then 2 s more."""
    last, seen = time.perf_counter(), len(impl.sent)
    while time.perf_counter() - last < patience:
        if others.numbers(impl.sent)[2] == 0:
            break
        await asyncio.sleep(0.2)
        if len(impl.sent) != seen:
            seen, last = len(impl.sent), time.perf_counter()
    await asyncio.sleep(2.0)
