"""`python -m bench qq --web-streams N`: QQ reply latency with and without N browsers chatting on the page.

Each round runs `bench qq` twice on the same bot settings, the page on in both: without streams, then
with N browsers chatting on it meanwhile. The browsers run in a process of their own at the lowest
priority (their work is not the bot's): each logs in with the login link as a browser does (session
and visitor cookies, Origin on every POST), then keeps a chat going on /chat/send, reading each
NDJSON reply to its end before it sends the next, no sooner than the shipped per-user rate limit
allows. They have each read a first reply before the QQ messages start, and stop once the QQ
replies are in. The page's chats take turns with QQ's groups for the model's slots, as they do in a
bot; `--set llm.max_concurrency=104` gives every chat and group a slot, so that the ratio shows only
what the page's streams cost the bot itself.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import time
import tomllib
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import httpx

from bench.load import ROOT, pct, question, report
from core.loop import run as run_loop
from tests.support.ports import free_port

TIMES = ("p50_s", "p95_s")
QQ_SHOWN = ("answered", "lost", "busy_notices", "throughput", "cpu_ms_per_message")
Run = Callable[["Browsers"], Coroutine[Any, Any, dict[str, Any]]]


class Browsers:
    """N browsers on the bot's page: `env` turns the page on for the bot; `start` and `stop` bracket the QQ load."""

    def __init__(self, streams: int, interval: float):
        self.streams = streams
        self.interval = interval  # seconds from one message of a browser to its next, at least
        self.port = free_port()
        self.token = secrets.token_urlsafe(32)
        self.env = {"BOT_WEB__ENABLED": "true", "BOT_WEB__PORT": str(self.port), "BOT_WEB__TOKEN": self.token}
        self.numbers: dict[str, Any] = {}
        self.started = 0.0
        self._conn: Connection | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None

    async def start(self) -> None:
        """Open the chats; back once every browser has read a whole first reply."""
        if not self.streams:
            return
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        args = (f"http://127.0.0.1:{self.port}", self.token, self.streams, self.interval, child)
        self._proc = ctx.Process(target=_browse, args=args, name="browsers", daemon=True)
        self._proc.start()
        word = await self._receive(180.0)
        if word != "ready":
            self._proc.kill()
            self._conn = None
            raise SystemExit(f"error: the page's chats did not start: {word}")
        self.started = time.monotonic()

    async def stop(self) -> None:
        """End the chats (a reply being read is left); its numbers go into `numbers`."""
        if self._conn is None or self._proc is None:
            return
        self._conn.send("stop")
        done = await self._receive(30.0)
        seconds = time.monotonic() - self.started
        self._proc.join(timeout=10)
        self._conn.close()
        self._conn = None
        if not isinstance(done, dict):
            raise SystemExit(f"error: the page's chats ended badly: {done}")
        replies = done["replies"]
        self.numbers = {"web_replies": len(replies), "web_replies_per_s": len(replies) / seconds,
                        "web_reply_p50_s": pct(replies, 0.5), "web_reply_p95_s": pct(replies, 0.95),
                        "web_unanswered": done["unanswered"], "web_errors": done["errors"]}
        if done["problem"]:
            self.numbers["web_first_error"] = done["problem"]

    async def _receive(self, timeout: float) -> Any:
        assert self._conn is not None and self._proc is not None
        deadline = time.monotonic() + timeout
        while not self._conn.poll():
            if time.monotonic() > deadline or not self._proc.is_alive():
                return "the browsers' process did not answer"
            await asyncio.sleep(0.05)
        return self._conn.recv()


def compare(streams: int, rounds: int, run: Run, changes: list[tuple[str, str, Any]], as_json: bool) -> int:
    """Run `bench qq` without and with the page's streams, alternated `rounds` times; print both and the ratio."""
    shipped = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))["bot"]["rate_limit_per_minute"]
    limit = next((v for section, key, v in changes if (section, key) == ("bot", "rate_limit_per_minute")), shipped)
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for _ in range(rounds):
        for name, count in (("without", 0), ("with", streams)):
            browsers = Browsers(count, 60.0 / float(limit))
            result = run_loop(run(browsers)) | browsers.numbers | {"load_average": os.getloadavg()[0]}
            runs[name].append(result)
            if not as_json:
                shown = (f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                         if k in TIMES + QQ_SHOWN or k.startswith("web_") or k == "load_average")
                print(f"{name} streams: " + ", ".join(shown), flush=True)
    summary: dict[str, Any] = {"web_streams": streams, "rounds": rounds}
    for key in TIMES:  # each configuration's mean over its runs
        summary |= {f"{name}_{key}": sum(r[key] for r in results) / rounds for name, results in runs.items()}
    ratios = {key: summary[f"with_{key}"] / summary[f"without_{key}"] for key in TIMES}
    summary |= {f"{key.removesuffix('_s')}_ratio": ratio for key, ratio in ratios.items()}
    summary["web_replies"] = sum(r["web_replies"] for r in runs["with"])
    summary["qq_lost"] = sum(r["lost"] for r in runs["with"] + runs["without"])
    floors = {f"QQ {key.removesuffix('_s')} with {streams} streams within 10 %": ratio <= 1.10 for key, ratio in ratios.items()}
    report(summary | ({"runs": runs} if as_json else {}), floors, as_json)
    return 0


def _browse(base: str, token: str, streams: int, interval: float, conn: Connection) -> None:
    """The browsers' process: at the lowest priority, it takes only the CPU the bot leaves."""
    os.nice(19)
    run_loop(_chats(base, token, streams, interval, conn))


async def _chats(base: str, token: str, streams: int, interval: float, conn: Connection) -> None:
    """Every browser's chat until the parent says stop; sends "ready", then the numbers."""
    replies: list[float] = []  # seconds from sending to the reply's last line, after "ready"
    counts = {"unanswered": 0, "errors": 0}
    problems: list[str] = []
    answered: set[int] = set()
    everyone, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopped() -> None:
        loop.remove_reader(conn.fileno())
        stop.set()

    loop.add_reader(conn.fileno(), stopped)

    async def browser(b: int) -> None:
        async with httpx.AsyncClient(base_url=base, headers={"Origin": base}, timeout=600) as client:
            await _login(client, token)
            m = 0
            while True:
                sent, warming = time.monotonic(), not everyone.is_set()
                m += 1
                try:
                    said = await _exchange(client, question(b * 7919 + m))
                except (httpx.HTTPError, RuntimeError) as exc:
                    if warming:  # before the QQ load a failure stops the bench
                        raise
                    counts["errors"] += 1
                    problems.append(f"{type(exc).__name__}: {exc}")
                else:
                    if warming and said is not None:
                        answered.add(b)
                        if len(answered) == streams:
                            everyone.set()
                    elif not warming and said is None:
                        counts["unanswered"] += 1
                    elif not warming:
                        replies.append(time.monotonic() - sent)
                await asyncio.sleep(max(0.0, sent + interval - time.monotonic()))

    tasks = [asyncio.create_task(browser(b)) for b in range(streams)]
    failed = asyncio.create_task(asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))
    await asyncio.wait([failed, asyncio.create_task(everyone.wait())], return_when=asyncio.FIRST_COMPLETED)
    if not everyone.is_set():
        problem = next(t.exception() for t in tasks if t.done())
        conn.send(f"{type(problem).__name__}: {problem}")
        return
    conn.send("ready")
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.recv()
    conn.send({"replies": replies, "problem": problems[0] if problems else ""} | counts)


async def _login(client: httpx.AsyncClient, token: str) -> None:
    """Open the login link, as a browser does: its cookies stay in the client (the bot may still be starting)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            r = await client.get("/", params={"token": token})
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    if r.status_code != 303 or "rp_session" not in client.cookies:
        raise RuntimeError(f"the login link answered {r.status_code}: {r.text[:200]}")


async def _exchange(client: httpx.AsyncClient, text: str) -> str | None:
    """Send one message and read the streamed answer to its end; the reply (None: no reply came).

    A kept-alive connection the server closed just as the message went out is tried again once on
    a new one, as browsers do when nothing of the answer has come yet."""
    for again in (False, True):
        said, answering = None, False
        try:
            async with client.stream("POST", "/chat/send", json={"text": text}) as r:
                answering = True
                if r.status_code != 200:
                    raise RuntimeError(f"/chat/send answered {r.status_code}: {(await r.aread())[:200]!r}")
                async for line in r.aiter_lines():
                    if line.strip():
                        said = json.loads(line).get("reply", said)
            return said
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            if answering or again:
                raise
    return None
