"""Under load, through the real chain and a local model server with a set latency: the bot's own queue
is never the server's fault, conversations take turns, a long wait gets one busy notice, and only a
wait past the hard limit is answered without the model."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.app import App, Clocks
from core.messages import Incoming, Reply
from core.slots import Slots
from persona.lines import BUSY
from tests.conftest import MakeSettings
from tests.core.test_metrics import moved, scrape
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder
from tests.support.ports import free_port
from tests.support.requests import replies


def at(uid: str, mid: str, where: str = "g1") -> Incoming:
    """A group message that @s the character, from a member of its own."""
    return Incoming("test", where, uid, f"U{uid}", "赫萝，在吗", message_id=mid, mentions_bot=True)


def dm(uid: str, mid: str = "") -> Incoming:
    """A direct message."""
    return Incoming("test", "dm-" + uid, uid, "Alice", "在吗", message_id=mid, is_direct=True)


def llm_cfg(srv: FakeOpenAI, **kw: Any) -> dict[str, Any]:
    return {"base_url": srv.base_url, "model": "test-model", **kw}


class Posts:
    """Everything the character posted, in order, with the message each one answers."""

    def __init__(self) -> None:
        self.items: list[Reply] = []

    def send(self, reply: Reply) -> Any:
        async def post() -> None:
            self.items.append(reply)

        return post()

    def answers(self) -> list[tuple[str, str]]:
        """(message id, mode) of every post."""
        return [(r.reply_to, r.mode) for r in self.items]


async def _open(app_factory: Any, make_settings: MakeSettings, llm: FakeOpenAI, clocks: Clocks | None = None,
                bot: dict[str, Any] | None = None, **llm_kw: Any) -> App:
    settings = make_settings(llm=llm_cfg(llm, **llm_kw), memory={"summary": False, "facts": False},
                             bot={"rate_limit_per_minute": 1000, **(bot or {})})
    return await app_factory(settings, clocks=clocks)  # type: ignore[no-any-return]


async def test_waiting_replies_take_turns_by_conversation() -> None:
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.take("reply", "a"):
            await release.wait()

    async def job(name: str) -> None:
        async with slots.take("reply", name[0]):
            order.append(name)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(job(n)) for n in ("a1", "a2", "a3", "b1", "c1")]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["a1", "b1", "c1", "a2", "a3"]  # round-robin across conversations, in order within one


async def test_time_waiting_for_a_slot_is_not_a_model_failure(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await _open(app_factory, make_settings, llm, max_concurrency=1, first_token_timeout=0.5, retry_after=60)
    llm.default = Script(text="好。", delay=0.3)
    got = await asyncio.gather(*(app.chain.handle(dm(f"u{i}")) for i in range(5)))  # the last waits ~1.2 s
    assert [r.mode if r else None for r in got] == ["model"] * 5
    assert len(replies(llm.requests)) == 5  # the breaker never opened


async def test_a_failing_server_is_answered_in_character_at_once_even_with_a_queue(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await _open(app_factory, make_settings, llm, max_concurrency=2, retry_after=60)
    llm.default = Script(status=500, error="boom")
    loop = asyncio.get_running_loop()
    start = loop.time()
    got = await asyncio.gather(*(app.chain.handle(dm(f"u{i}")) for i in range(12)))
    assert loop.time() - start <= 1.0
    assert all(r is not None and r.mode == "fallback" and r.text for r in got)
    assert len(replies(llm.requests)) <= 2  # those waiting were not sent once the breaker opened


async def test_a_flood_in_one_group_delays_that_group_not_the_others_and_keeps_its_order(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await _open(app_factory, make_settings, llm, bot={"busy_notice_seconds": 0},
                      max_concurrency=1, first_token_timeout=1.0)
    llm.default = Script(text="好。", delay=0.15)
    posts = Posts()
    flood = [asyncio.create_task(app.chain.handle(at(f"a{i}", f"a{i}"), Recorder(posts.send))) for i in range(8)]
    await asyncio.sleep(0.05)
    others = [app.chain.handle(at("b", "b", where="g2"), Recorder(posts.send)), app.chain.handle(dm("c", "c"), Recorder(posts.send))]
    await asyncio.gather(*flood, *others)
    answered = posts.answers()
    assert all(mode == "model" for _, mode in answered) and len(answered) == 10
    in_flood = [mid for mid, _ in answered if mid.startswith("a")]
    assert in_flood == [f"a{i}" for i in range(8)]  # in order within the flooded group
    third_of_flood = answered.index(("a2", "model"))
    assert answered.index(("b", "model")) < third_of_flood and answered.index(("c", "model")) < third_of_flood


async def test_a_long_wait_gets_one_busy_notice_per_conversation_and_wait_then_the_answer(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await _open(app_factory, make_settings, llm, bot={"busy_notice_seconds": 0.3}, max_concurrency=1)
    llm.default = Script(text="好。", delay=0.25)
    busy_lines = set(app.personas.get("horo").card.lines.busy)
    posts = Posts()
    for wave in ("x", "y"):  # two waits, one after the other
        await asyncio.gather(*(app.chain.handle(at(f"{wave}{i}", f"{wave}{i}"), Recorder(posts.send)) for i in range(4)))
    notices = [r for r in posts.items if r.mode == "canned"]
    assert len(notices) == 2 and all(r.text in busy_lines for r in notices)
    assert [r.reply_to[0] for r in notices] == ["x", "y"]
    for notice in notices:  # it quotes a message that waited, whose real answer follows it
        assert notice.reply_to[1:] in ("1", "2", "3")
        real = next(i for i, r in enumerate(posts.items) if r.reply_to == notice.reply_to and r.mode == "model")
        assert posts.items.index(notice) < real
    assert [r.reply_to for r in posts.items if r.mode == "model"] == [f"{w}{i}" for w in "xy" for i in range(4)]


async def test_no_busy_notice_when_nothing_waits_and_for_a_card_without_lines_a_plain_one(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await _open(app_factory, make_settings, llm, bot={"busy_notice_seconds": 0.2, "default_persona": "yexiu"},
                      max_concurrency=4)
    llm.default = Script(text="行。", delay=0.3)
    posts = Posts()
    await asyncio.gather(*(app.chain.handle(at(f"u{i}", f"m{i}", where=f"g{i}"), Recorder(posts.send)) for i in range(3)))
    assert [mode for _, mode in posts.answers()] == ["model"] * 3  # nobody waited for a slot: no notice
    assert set(app.personas.get("yexiu").card.lines.busy)  # the shipped cards speak in their own voice
    assert "zh" in BUSY and all(BUSY[lang] for lang in ("zh", "en", "ja"))  # the plain lines for other cards


async def test_only_a_wait_past_the_limit_is_answered_without_the_model_and_it_is_counted(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    settings = make_settings(
        llm=llm_cfg(llm, max_concurrency=1, retry_after=60), memory={"summary": False, "facts": False},
        bot={"max_queue_seconds": 0.5, "busy_notice_seconds": 0}, metrics={"enabled": True, "port": port},
    )
    app: App = await app_factory(settings)
    before = scrape(port)
    llm.default = Script(text="好。", delay=1.0)
    with caplog.at_level(logging.WARNING, logger="bot.pipeline.stages.generate"):
        got = await asyncio.gather(*(app.chain.handle(dm(f"u{i}", f"m{i}")) for i in range(3)))
    modes = [r.mode if r else None for r in got]
    assert sorted(modes, key=str) == ["fallback", "fallback", "model"]  # all answered, never dropped
    assert all(r is not None and r.text for r in got)
    assert moved(before, scrape(port), "bot_messages_shed_total") == 2
    shed = [f"test:dm:u{i}" for i, mode in enumerate(modes) if mode == "fallback"]
    logged = [m for m in caplog.messages if "max_queue_seconds" in m]
    assert len(logged) == 2 and all(any(m.startswith(key) for m in logged) for key in shed)
    assert moved(before, scrape(port), "bot_model_breaker_openings_total") == 0
    llm.default = Script(text="好。")
    again = await app.chain.handle(dm("u9"))
    assert again is not None and again.mode == "model"  # the server was never blamed


async def test_a_message_that_waited_its_limit_behind_its_own_conversation_is_not_sent(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    now = [1000.0]
    app = await _open(app_factory, make_settings, llm, clocks=Clocks(mono=lambda: now[0]),
                      bot={"max_queue_seconds": 180, "busy_notice_seconds": 0})
    llm.default = Script(text="好。")
    posts: list[Reply] = []

    async def send(reply: Reply) -> None:
        posts.append(reply)
        now[0] += 200  # the first answer took so long that the next message has waited past the limit

    got = await asyncio.gather(*(app.chain.handle(at(f"u{i}", f"m{i}"), Recorder(send)) for i in range(2)))
    assert [r.mode if r else None for r in got] == ["model", "fallback"]
    assert [r.reply_to for r in posts] == ["m0", "m1"]
    assert len(replies(llm.requests)) == 1
