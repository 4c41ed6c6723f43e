"""Nothing acknowledged is lost while Redis restarts: retries, the waiting queue, the flush after."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.app import App
from core.conversation import Conversation
from core.messages import Incoming
from memory.journal import Adopted, Entry, Route
from memory.redis_store import RedisStore
from memory.resilient import ResilientStore
from memory.turns import SessionKey, Turn
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI

FILLER_KEYS = 4000  # with --key-load-delay, the restarted server answers LOADING for a while


class RedisServer:
    """A redis-server of this test's own on a free port, stopped and started at will."""

    def __init__(self, folder: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (Debian package redis-server); `make test` installs it")
        self.binary, self.folder = binary, folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, load_delay_us: int = 0) -> None:
        """Start it on the same port and data folder; return once it accepts connections."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--save", "3600 1", "--appendonly", "no", "--key-load-delay", str(load_delay_us)]
        args += ["--loading-process-events-interval-bytes", "1024"]  # answer LOADING while loading
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """SIGTERM: it saves its data and exits (a restart loads it again)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def fill(srv: RedisServer) -> None:
    """Enough keys that loading them back (with a load delay) takes about a second."""
    client = redis.Redis.from_url(srv.url)
    client.mset({f"filler:{i}": "x" for i in range(FILLER_KEYS)})
    client.close()


def exchange(conv: int, i: int) -> list[Turn]:
    return [Turn("user", f"c{conv}-q{i}", "u1", "Alice"), Turn("assistant", f"c{conv}-a{i}")]


def expected(conv: int, count: int) -> list[str]:
    return [text for i in range(count) for text in (f"c{conv}-q{i}", f"c{conv}-a{i}")]


KEYS = [SessionKey("horo", "qq", "group", f"g{n}") for n in range(3)]


async def write_through_restart(store: Any, srv: RedisServer, seconds: float, down: float) -> list[float]:
    """Three conversations append an exchange every 50 ms while the server goes away for `down` s."""
    counts = [0, 0, 0]
    latencies: list[float] = []

    async def writer(conv: int) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            await store.append(KEYS[conv], exchange(conv, counts[conv]))
            latencies.append(time.monotonic() - started)
            counts[conv] += 1
            await asyncio.sleep(0.05)

    async def outage() -> None:
        await asyncio.sleep(0.8)
        await asyncio.to_thread(srv.stop)
        await asyncio.sleep(down)
        await asyncio.to_thread(srv.start, 300)  # 4000 keys x 300 us: LOADING for about a second

    await asyncio.gather(outage(), *(writer(n) for n in range(3)))
    return [float(c) for c in counts] + latencies


async def stored_texts(url: str, key: SessionKey) -> list[str]:
    check = RedisStore(url, retry_seconds=10)
    try:
        turns = await check.recent(key, 1000)
    finally:
        await check.close()
    assert [t.seq for t in turns] == list(range(1, len(turns) + 1))
    return [t.text for t in turns]


async def test_restart_is_ridden_out_by_retries(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    fill(server)
    caplog.set_level(logging.DEBUG, logger="memory.redis_retry")
    store = RedisStore(server.url, max_turns=1000, retry_seconds=10)
    try:
        result = await write_through_restart(store, server, seconds=6.0, down=3.0)
    finally:
        await store.close()
    counts, latencies = [int(c) for c in result[:3]], result[3:]
    assert max(latencies) > 2.5  # some appends did wait out the outage
    assert any("loading" in r.getMessage().lower() for r in caplog.records)  # and the LOADING phase
    for conv in range(3):
        assert await stored_texts(server.url, KEYS[conv]) == expected(conv, counts[conv])


async def test_longer_outage_waits_in_memory_and_is_written_in_order(server: RedisServer) -> None:
    store = ResilientStore(RedisStore(server.url, max_turns=1000, retry_seconds=0.3), probe_every=0.1)
    try:
        result = await write_through_restart(store, server, seconds=6.0, down=3.0)
        counts, latencies = [int(c) for c in result[:3]], result[3:]
        assert max(latencies) < 1.0  # nobody waited for the server: exchanges were queued
        for _ in range(200):
            if store.available:
                break
            await asyncio.sleep(0.05)
        assert store.available and store.pending == 0
    finally:
        await store.close()
    for conv in range(3):
        assert await stored_texts(server.url, KEYS[conv]) == expected(conv, counts[conv])


async def test_reads_and_the_journal_go_on_during_an_outage(server: RedisServer) -> None:
    store = ResilientStore(RedisStore(server.url, retry_seconds=0.2), probe_every=0.1)
    try:
        await store.set_setting(Conversation("qq", "group", "1"), "persona", "wukong")
        assert await store.settings(Conversation("qq", "group", "1")) == {"persona": "wukong"}
        server.stop()
        await store.append(KEYS[0], exchange(0, 0))
        assert not store.available
        started = time.monotonic()
        assert await store.recent(KEYS[0], 10) == []
        assert (await store.summary(KEYS[0])).text == ""
        assert await store.facts("horo", "qq", "u1") == []
        assert await store.settings(Conversation("qq", "group", "1")) == {"persona": "wukong"}  # the last ones seen
        # the journal cannot be written: a message is answered at once, and not twice by this process
        here, there = (Incoming("qq", g, "u1", "阿青", "hi", message_id="m1", bot_id="10001") for g in ("1", "2"))
        assert await store.journal.enter(Entry(here, Route(), 1.0), "run-a") == "new"
        await store.journal.done([Entry(here, Route(), 1.0).key], 60)
        assert await store.journal.enter(Entry(here, Route(), 1.0), "run-a") == "done"
        assert await store.journal.enter(Entry(there, Route(), 1.0), "run-a") == "new"
        assert await store.journal.adopt("run-a", 0.0, 10, 60) == Adopted()
        assert time.monotonic() - started < 0.5  # no read waits for the server while it is known away
        server.start()
        for _ in range(100):
            if store.available:
                break
            await asyncio.sleep(0.05)
        assert [t.text for t in await store.recent(KEYS[0], 10)] == expected(0, 1)
    finally:
        await store.close()


async def test_a_scenes_lines_for_several_characters_ride_out_a_restart(server: RedisServer) -> None:
    store = ResilientStore(RedisStore(server.url, retry_seconds=0.2), probe_every=0.1)
    line = Turn("user", "咱先说。", "scene:horo", "赫萝", speaker="horo")
    try:
        await store.append_each([(KEYS[0], [line]), (KEYS[1], [line])])  # a fresh server: the script is loaded first
        server.stop()
        server.start()  # the restarted server forgot the script: it is loaded again
        await store.append_each([(KEYS[0], [replace(line, text="再说一句。")]), (KEYS[1], [replace(line, text="再说一句。")])])
        server.stop()
        await store.append_each([(KEYS[0], [replace(line, text="又一句。")]), (KEYS[1], [replace(line, text="又一句。")])])
        assert not store.available and store.pending == 2  # waiting in memory, one exchange per character
        server.start()
        for _ in range(100):
            if store.available and not store.pending:
                break
            await asyncio.sleep(0.05)
        for key in KEYS[:2]:
            assert [t.text for t in await store.recent(key, 10)] == ["咱先说。", "再说一句。", "又一句。"]
    finally:
        await store.close()


async def test_dropped_exchanges_are_named(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    store = ResilientStore(RedisStore(server.url, retry_seconds=0.1), max_pending=2, grace=0.3, probe_every=0.1)
    server.stop()
    caplog.set_level(logging.WARNING, logger="memory.resilient")
    for n in range(3):
        await store.append(KEYS[n], exchange(n, 0))
    assert store.pending == 2
    assert any(f"dropped an exchange of {KEYS[2]}" in r.getMessage() for r in caplog.records)
    await store.close()  # the server never comes back within the grace
    shutdown = [r.getMessage() for r in caplog.records if "at shutdown" in r.getMessage()]
    assert [str(KEYS[0]) in m for m in shutdown] == [True, False]
    assert str(KEYS[1]) in shutdown[1]


def dm(text: str, mid: str) -> Incoming:
    return Incoming("qq", "private", "u1", "Alice", text, message_id=mid, is_direct=True, bot_id="10001")


async def test_messages_during_an_outage_are_answered_and_stored(
    server: RedisServer, make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    memory = {"backend": "redis", "redis_url": server.url, "retry_seconds": 0.5, "summary": False, "facts": False}
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, memory=memory)
    app: App = await app_factory(settings)
    assert await app.chain.handle(dm("第一句", "1")) is not None
    server.stop()
    for i in (2, 3, 4):  # the three messages of the reported 3.5 s outage
        reply = await app.chain.handle(dm(f"第{i}句", str(i)))
        assert reply is not None and reply.text
    assert await app.chain.handle(dm("第4句", "4")) is None  # a redelivery is still answered once
    server.start()
    for _ in range(100):
        if app.store.available:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    turns = await app.store.recent(SessionKey("horo", "qq", "dm", "u1"), 100)
    assert [t.text for t in turns if t.role == "user"] == ["第一句", "第2句", "第3句", "第4句"]
    assert [t.role for t in turns] == ["user", "assistant"] * 4
