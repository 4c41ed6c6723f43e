"""Stops lose nothing: the real bot process stopped mid-burst (SIGTERM, kill -9), started again, and
every message it received answered exactly once across the restart, over a real OneBot connection."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MakeSettings
from tests.qq.onebot_impl import text
from tests.support.bot_process import BotProcess, Recorder
from tests.support.openai_server import FakeOpenAI, Script

TOKEN = "stop-token"
SELF_ID = "10000"
FIRST_ID, GROUP0, USER0 = 900_000, 700_000, 300_000


class Timed:
    """The model: every reply takes `latency` seconds; notes when each request arrived."""

    def __init__(self, latency: float):
        self.latency = latency
        self.arrivals: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Script:
        with self._lock:
            self.arrivals.append(time.monotonic())
        return Script(text="咱听见了，汝且听咱慢慢道来。", delay=self.latency)


def burst(impl: Recorder, messages: int, groups: int) -> list[dict[str, Any]]:
    """Group messages that @ the bot, each from a user of its own (no two are merged)."""
    return [
        impl.group_message([{"type": "at", "data": {"qq": SELF_ID}}, text(f" 第{i}句")],
                           group_id=GROUP0 + i % groups, user_id=USER0 + i, message_id=FIRST_ID + i)
        for i in range(messages)
    ]


async def until(check: Callable[[], bool], timeout: float) -> None:
    """Wait until `check()` holds (AssertionError after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def settings_for(make_settings: MakeSettings, llm: FakeOpenAI, concurrency: int, **memory: Any) -> Path:
    """config.toml: QQ on, every message answered by the model (however long it queues), replies whole."""
    settings = make_settings(
        qq={"enabled": True},
        bot={"drain_seconds": 2.0, "rate_limit_per_minute": 100_000},
        llm={"base_url": llm.base_url, "model": "test-model", "max_concurrency": concurrency,
             "first_token_timeout": 600.0, "deadline": 600.0, "retry_after": 0},
        memory={"summary": False, "facts": False, **memory},
    )
    assert settings.source is not None
    return settings.source


@pytest.mark.slow  # two bot processes and a burst
async def test_sigterm_mid_burst_drains_then_the_restart_answers_the_rest_once(
    make_settings: MakeSettings, llm: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    llm.responder = Timed(0.5)
    config = settings_for(make_settings, llm, 2, backend="redis", redis_url=redis_url, key_prefix=redis_prefix)
    bot = BotProcess(config, TOKEN)
    try:
        await bot.start()
        impl = Recorder(bot.url, SELF_ID, TOKEN)
        await impl.open()
        events = burst(impl, 48, 12)
        for event in events:
            await impl.push(event)
        await until(lambda: len(impl.sent) >= 6, 60)
        at_stop = len(impl.sent)
        seconds = await bot.stop(signal.SIGTERM)
        await impl.close()
        before = impl.quoted()
        out = bot.output()
        assert bot.returncode == 0, out
        assert "Traceback" not in out and "has been closed" not in out, out
        assert seconds < 2.0 + 10, out  # [bot] drain_seconds, then closing
        assert len(before) > at_stop  # messages in hand were answered while draining
        assert len(before) < len(events), "the stop came after the burst was answered"
        assert "stay journaled for the next start" in out

        await bot.start()
        again = Recorder(bot.url, SELF_ID, TOKEN)
        await again.open()
        ids = [FIRST_ID + i for i in range(len(events))]
        await until(lambda: set(before) | set(again.quoted()) >= set(ids), 90)
        for event in events:  # the implementation delivers the whole burst once more: nothing new
            await again.push(event)
        await asyncio.sleep(2.0)
        answers = Counter(before + again.quoted())
        assert sorted(answers) == ids and set(answers.values()) == {1}
        await bot.stop(signal.SIGTERM)
        await again.close()
        assert bot.returncode == 0 and "Traceback" not in bot.output(), bot.output()
    finally:
        await bot.close()


@pytest.mark.slow  # two bot processes and a burst
async def test_kill_9_every_journaled_message_is_answered_after_the_restart_once(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    model = Timed(0.6)
    llm.responder = model
    config = settings_for(make_settings, llm, 1, backend="sqlite")
    bot = BotProcess(config, TOKEN)
    try:
        await bot.start()
        impl = Recorder(bot.url, SELF_ID, TOKEN)
        await impl.open()
        events = burst(impl, 30, 6)
        for event in events:
            await impl.push(event)
        # one model call at a time: killed between a reply going out and the next one, so no
        # reply is on its way at that moment (a reply sent and never marked done is another matter)
        await until(lambda: len(model.arrivals) >= 4, 60)
        await asyncio.sleep(max(0.0, model.arrivals[3] + 0.3 - time.monotonic()))
        await bot.stop(signal.SIGKILL)
        await impl.close()
        before = impl.quoted()
        with sqlite3.connect(config.parent / "data" / "memory.sqlite3") as db:
            journaled = {int(key.rsplit(":", 1)[1]) for (key,) in db.execute("SELECT key FROM journal")}
        ids = [FIRST_ID + i for i in range(len(events))]
        assert 0 < len(before) < len(events)
        assert journaled.isdisjoint(before) and journaled | set(before) == set(ids)

        await bot.start()
        again = Recorder(bot.url, SELF_ID, TOKEN)
        await again.open()
        for event in events[-5:]:  # delivered again while the dead run's claim has not yet run out
            await again.push(event)
        await until(lambda: set(again.quoted()) >= journaled, 120)
        await asyncio.sleep(2.0)
        answers = Counter(before + again.quoted())
        assert sorted(answers) == ids and set(answers.values()) == {1}
        await bot.stop(signal.SIGTERM)
        await again.close()
        assert bot.returncode == 0 and "Traceback" not in bot.output(), bot.output()
    finally:
        await bot.close()
