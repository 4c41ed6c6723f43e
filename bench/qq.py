"""`python -m bench qq`: group messages into a fresh `python -m bot run --platform qq` over OneBot v11.

The bench is the OneBot implementation: it connects to the bot's reverse WebSocket, pushes M group
messages spread over G groups at R messages/s (each @-mentions the bot, from a user of its own, with a
unique message id and its sequence number in the text), answers every action the bot calls, and
matches each reply to the messages it answers: the message it quotes, and the numbers the scripted
model echoes from the newest user message of its prompt (so a merged burst counts every message in it).

The bot runs on the shipped config.toml; the bench changes only where things are (data folder,
Redis prefix, the scripted model's address, QQ on) and the character (孙悟空, whose source is
indexed for the run). `--set SECTION.KEY=VALUE` (a TOML value) changes anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from bench.answers import Tally, spread
from bench.load import REDIS_URL, ROOT, ModelProcess, ideal, ingest, mark, pct, question, redis_prefix, report
from bench.qq_web import Browsers, compare
from core.loop import run as run_loop
from persona.library import PersonaLibrary
from persona.lines import BUSY
from tests.qq.onebot_impl import OneBotImpl, text
from tests.support.ports import free_port, wait_listening

TOKEN = "bench-token"
SELF_ID = "10000"
FIRST_ID = 900_000  # message ids: FIRST_ID + sequence number
GROUP0, USER0 = 700_000, 300_000


class Implementation(OneBotImpl):
    """A OneBot v11 implementation that answers every action and notes when each message went out."""

    def __init__(self, url: str):
        super().__init__(url, SELF_ID, TOKEN)
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            call = json.loads(raw)
            await self._ws.send(json.dumps(self._answer(call), ensure_ascii=False))
            if call["action"] in ("send_msg", "send_group_msg"):
                self.sent.append((time.perf_counter(), dict(call.get("params", {}))))
                self.arrived.set()


def register(sub: Any) -> None:
    """Add the `qq` subcommand."""
    p = sub.add_parser("qq", help="group messages into a fresh bot process over OneBot v11")
    p.add_argument("--groups", type=int, default=50)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="messages/s pushed (0: all at once)")
    p.add_argument("--llm-latency-ms", type=float, default=300.0)
    p.add_argument("--concurrency", type=int, help="[llm] max_concurrency (default: the shipped one)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="change one key of the shipped config.toml (a TOML value), e.g. llm.retry_after=10")
    p.add_argument("--log", type=Path, help="keep the bot's log here")
    p.add_argument("--web-streams", type=int, default=0, metavar="N",
                   help="compare QQ latency without and with N browsers chatting on the web page meanwhile")
    p.add_argument("--rounds", type=int, default=1, help="with --web-streams: runs of each, alternated")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the bench and print the numbers."""
    changes = [_change(item) for item in args.set]
    if args.concurrency is not None:
        changes.append(("llm", "max_concurrency", args.concurrency))
    if args.web_streams:
        return compare(args.web_streams, args.rounds, lambda browsers: run(
            args.groups, args.messages, args.rate, args.llm_latency_ms, changes, args.log, browsers), changes, args.json)
    result = run_loop(run(args.groups, args.messages, args.rate, args.llm_latency_ms, changes, args.log))
    floors = {"0 lost": result["lost"] == 0, "0 duplicated": result["duplicated"] == 0,
              "0 out of order": result["out_of_order"] == 0, ">= 99 % by the model": result["by_model"] >= 0.99,
              "0 answers without a quote": result["unquoted"] == 0, "0 breaker openings": result["breaker_openings"] == 0}
    if args.messages >= 2 * args.groups:  # a group's median means something only over several messages
        floors["group p50 spread <= 2"] = result["group_p50_spread"] <= 2.0
    report(result, floors, args.json)
    return 0


def _change(item: str) -> tuple[str, str, Any]:
    """SECTION.KEY=VALUE as (section, key, value); the value is read as TOML (bare words as text)."""
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise SystemExit(f"error: --set {item!r}: write it as SECTION.KEY=VALUE, e.g. llm.retry_after=10")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def shipped_config(folder: Path, base_url: str, prefix: str, changes: list[tuple[str, str, Any]]) -> Path:
    """The repository's config.toml with only the places changed (and `changes`), written into `folder`."""
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    places = {
        "bot": {"data_dir": str(folder / "data"), "default_persona": "wukong"},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(folder / "imported")},
        "llm": {"base_url": base_url, "model": "test-model"},
        "memory": {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix},
        "qq": {"enabled": True},
    }
    for section, values in places.items():
        data.setdefault(section, {}).update(values)
    for section, key, value in changes:
        data.setdefault(section, {})[key] = value
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def _busy_lines(persona: str) -> frozenset[str]:
    """What a busy notice of the character may say: its card's lines, else the plain ones."""
    card = PersonaLibrary([ROOT / "persona"]).get(persona).card
    return frozenset(card.lines.busy) | frozenset(line for lines in BUSY.values() for line in lines)




async def run(
    groups: int, messages: int, rate: float, latency_ms: float, changes: list[tuple[str, str, Any]],
    keep_log: Path | None = None, browsers: Browsers | None = None,
) -> dict[str, Any]:
    """The numbers of one run against a bot process started for it (the page on, with `browsers` on it)."""
    with tempfile.TemporaryDirectory(prefix="rp-bench-qq-") as tmp, ModelProcess(latency_ms) as model, \
            redis_prefix() as prefix:
        folder = Path(tmp)
        ingest(folder / "data")
        config = shipped_config(folder, model.base_url, prefix, changes)
        shipped = tomllib.loads(config.read_text(encoding="utf-8"))
        concurrency = int(shipped["llm"]["max_concurrency"])
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        env |= {"BOT_QQ__PORT": str(port), "BOT_QQ__ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(ROOT),
            "BOT_WEB__ENABLED": "false"} | (browsers.env if browsers is not None else {})
        log = folder / "bot.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--platform", "qq", "--config", str(config),
                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            try:
                await wait_listening(port, proc, log, timeout=60.0)
            except RuntimeError as exc:
                raise SystemExit(f"error: {exc}") from None
            if browsers is not None:
                await browsers.start()
            impl = Implementation(f"ws://127.0.0.1:{port}/onebot/v11/ws")
            await impl.open()
            try:
                tally = Tally(FIRST_ID, GROUP0, _busy_lines("wukong"), int(shipped["pacing"]["max_messages"]))
                capacity = ideal(rate, groups, concurrency, latency_ms)
                cpu = _cpu_seconds(proc.pid)
                started = await _push(impl, tally, groups, messages, rate)
                patience = 30 + 2 * messages / capacity + float(shipped["bot"].get("max_queue_seconds", 180.0))
                await _collect(impl, tally, messages, patience)
                rss, cpu = _peak_rss_mb(proc.pid), _cpu_seconds(proc.pid) - cpu
            finally:
                await impl.close()
        finally:
            if browsers is not None:
                await browsers.stop()
            output = await _stop(proc, log)
            if keep_log is not None:
                keep_log.write_bytes(log.read_bytes())
    logged = {"breaker_openings": output.count("answering offline for"), "shed": output.count("max_queue_seconds")}
    return _numbers(tally, impl.sent, messages, groups, started, capacity, rss, cpu) | logged




async def _push(impl: Implementation, tally: Tally, groups: int, messages: int, rate: float) -> float:
    """Send every message on schedule; the start time."""
    started = time.perf_counter()
    for seq in range(messages):
        if rate > 0:
            await asyncio.sleep(max(0.0, started + seq / rate - time.perf_counter()))
        group = seq % groups
        segments = [{"type": "at", "data": {"qq": SELF_ID}}, text(f" 悟空，{question(seq)} {mark(group, seq)}")]
        event = impl.group_message(segments, group_id=GROUP0 + group, user_id=USER0 + seq, message_id=FIRST_ID + seq)
        tally.pushed[seq] = time.perf_counter()
        await impl.push(event)
    return started


async def _collect(impl: Implementation, tally: Tally, messages: int, patience: float) -> None:
    """Wait until every message is answered (then a second more, for duplicates) or nothing comes for a while."""
    last = time.perf_counter()
    while time.perf_counter() - last < patience:
        impl.arrived.clear()
        try:
            await asyncio.wait_for(impl.arrived.wait(), 1.0)
            last = time.perf_counter()
        except TimeoutError:
            pass
        answered = Tally(tally.first_id, tally.group0, tally.busy_lines, tally.parts)
        answered.read(impl.sent)
        if len(answered.answers) >= messages:
            await asyncio.sleep(1.0)
            break
    tally.read(impl.sent)


def _cpu_seconds(pid: int) -> float:
    """CPU time the bot process has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """The bot process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _stop(proc: asyncio.subprocess.Process, log: Path) -> str:
    """SIGINT, as an operator would; killed if it has not stopped in 30 s. What it logged."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    output = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0 or "Traceback" in output:
        print(f"warning: the bot exited with {proc.returncode}; its log:\n{output[-4000:]}", file=sys.stderr)
    return output


def _numbers(
    tally: Tally, sent: list[tuple[float, dict[str, Any]]], messages: int, groups: int, started: float,
    capacity: float, rss: float, cpu: float,
) -> dict[str, Any]:
    """The printed numbers (`cpu`: the bot's CPU seconds over the run)."""
    latencies, by_group = tally.latencies(sent, messages, groups)
    answered = len(latencies)
    end = max((t for t, _ in sent), default=started)
    return {
        "messages": messages,
        "replies": len(sent),
        "answered": answered,
        "by_model": len(tally.by_model & set(range(messages))) / messages if messages else 0.0,
        "lost": messages - answered,
        "duplicated": sum(len(v) - 1 for v in tally.answers.values()),
        "out_of_order": tally.out_of_order,
        "unquoted": tally.unquoted,
        "busy_notices": tally.busy,
        "throughput": answered / (end - started) if end > started else 0.0,
        "ideal": capacity,
        "p50_s": pct(latencies, 0.5),
        "p95_s": pct(latencies, 0.95),
        "max_s": max(latencies, default=float("nan")),
        "group_p50_spread": spread(by_group),
        "rss_mb": rss,
        "cpu_ms_per_message": 1000 * cpu / messages,
    }
