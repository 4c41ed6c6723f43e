"""The journal through the real App and SQLite: a drain keeps what it cannot answer, the next start
answers it through the front that registered for it, once, and drops what is too old."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.app import App, Clocks
from core.config import Settings
from core.messages import Incoming, Reply
from memory.journal import Entry, Route
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder
from tests.support.requests import replies

ROUTE = Route("test", {"where": "here"})


class Front:
    """A front of the test's own, registered like QQ's and Discord's: answers journaled messages again."""

    def __init__(self, app: App):
        self.app = app
        self.sent: list[Reply] = []
        self.routes: list[Route] = []

    async def ready(self, entry: Entry, patience: float) -> bool:
        return True

    async def answer(self, entry: Entry) -> bool:
        self.routes.append(entry.route)
        await self.app.chain.handle(entry.incoming, Recorder(self.send), entry.route)
        return True

    async def send(self, reply: Reply) -> None:
        self.sent.append(reply)


def dm(text: str, mid: str) -> Incoming:
    return Incoming("test", "u1", "u1", "Alice", text, message_id=mid, is_direct=True, bot_id="b1")


def settings_for(make_settings: MakeSettings, llm: FakeOpenAI) -> Settings:
    return make_settings(llm={"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
                         memory={"summary": False, "facts": False})


async def stop_with_two_unanswered(settings: Settings, llm: FakeOpenAI) -> None:
    """One message in hand past the drain's deadline, one arriving during the drain."""
    llm.push(Script(text="来不及说完。", delay=3.0))
    async with App.open(settings) as app:
        first = asyncio.create_task(app.chain.handle(dm("在吗", "m1"), Recorder(_never), ROUTE))
        await asyncio.to_thread(llm.wait_for_requests, 1)
        draining = asyncio.create_task(app.chain.drain(0.3))
        await asyncio.sleep(0)
        assert not app.chain.accepting
        assert await app.chain.handle(dm("还在吗", "m2"), Recorder(_never), ROUTE) is None  # only journaled
        assert await draining == 1
        assert await first is None
    assert len(replies(llm.requests)) == 1  # the second never reached the model


async def _never(reply: Reply) -> None:
    raise AssertionError(f"nothing is sent before the restart: {reply.text}")


async def test_the_next_start_answers_what_a_stop_left_once(make_settings: MakeSettings, llm: FakeOpenAI) -> None:
    settings = settings_for(make_settings, llm)
    await stop_with_two_unanswered(settings, llm)
    llm.clear()
    llm.default = Script(text="咱在。")
    async with App.open(settings) as app:
        front = Front(app)
        app.replay.register("test", front)
        for _ in range(200):
            if len(front.sent) == 2:
                break
            await asyncio.sleep(0.02)
        assert [r.text for r in front.sent] == ["咱在。", "咱在。"]
        assert [r.reply_to for r in front.sent] == ["m1", "m2"]  # in the order they arrived
        assert front.routes == [ROUTE, ROUTE]
        assert await app.chain.handle(dm("在吗", "m1"), route=ROUTE) is None  # a redelivery: done already
        await app.replay.sweep()
        await asyncio.sleep(0.1)
        assert len(front.sent) == 2 and len(replies(llm.requests)) == 2


async def test_what_is_older_than_replay_minutes_is_dropped_not_answered_late(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    settings = settings_for(make_settings, llm)
    await stop_with_two_unanswered(settings, llm)
    llm.clear()
    later = Clocks(wall=lambda: time.time() + (settings.bot.replay_minutes + 1) * 60)
    async with App.open(settings, clocks=later) as app:
        front = Front(app)
        app.replay.register("test", front)
        assert await app.replay.sweep() == 0
        await asyncio.sleep(0.1)
        assert front.sent == [] and replies(llm.requests) == []
        assert await app.chain.handle(dm("在吗", "m1"), route=ROUTE) is None  # dropped counts as seen


async def test_a_message_that_fails_is_not_kept_for_later(make_settings: MakeSettings, llm: FakeOpenAI) -> None:
    settings = settings_for(make_settings, llm)
    llm.default = Script(text="嗯。")

    async def refused(reply: Reply) -> Any:
        raise ConnectionError("the platform refused the reply")

    async with App.open(settings) as app:
        with pytest.raises(ConnectionError):
            await app.chain.handle(dm("你好", "m9"), Recorder(refused), ROUTE)
    async with App.open(settings) as app:
        front = Front(app)
        app.replay.register("test", front)
        await app.replay.sweep()
        await asyncio.sleep(0.1)
        assert front.sent == []  # it would fail again: not retried after a restart


class Stubborn(Front):
    """A front whose answer swallows the first cancellation (as some client libraries do) and goes on."""

    async def answer(self, entry: Entry) -> bool:
        self.routes.append(entry.route)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(30)
        return True


async def test_a_stop_does_not_hang_on_a_replay_that_swallows_its_cancellation(
    make_settings: MakeSettings, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(make_settings, llm)
    await stop_with_two_unanswered(settings, llm)
    started = 0.0
    async with App.open(settings) as app:
        front = Stubborn(app)
        app.replay.register("test", front)
        for _ in range(200):
            if front.routes:
                break
            await asyncio.sleep(0.02)
        assert front.routes  # the replay is under way
        started = time.monotonic()
    assert time.monotonic() - started < 15  # the stop waited a while, then left it behind
    assert any("did not end" in r.getMessage() and "replay" in r.getMessage() for r in caplog.records)
