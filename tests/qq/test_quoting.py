"""In a QQ group every answer quotes the message it answers (nonebug drives the plugin's matchers):
the model's reply, an example line when the model fails or the wait was too long, a busy notice
and a rate-limit notice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, GroupMessageEvent, Message
from nonebug import App as NoneBugApp

from bot.app import App
from core.llm import OpenAIChat
from persona.lines import pick
from tests.qq.conftest import SELF_ID, group_event
from tests.support.openai_server import FakeOpenAI, Script


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


class Quoting(Message):
    """A message that quotes and @s `event`'s sender, then says one of `lines` (compared by nonebug with ==)."""

    def __init__(self, event: GroupMessageEvent, lines: list[str]):
        super().__init__()
        self.event, self.lines = event, lines

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or len(other) != 3:
            return False
        quote, at, text = other
        return (quote.type == "reply" and str(quote.data["id"]) == str(self.event.message_id)
                and at.type == "at" and str(at.data["qq"]) == str(self.event.user_id)
                and text.type == "text" and str(text.data["text"]).strip() in self.lines)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]


@asynccontextmanager
async def slot_taken(app: App, seconds: float) -> AsyncIterator[None]:
    """Another conversation's request holds the only model slot for `seconds`."""
    assert isinstance(app.model, OpenAIChat)
    taken = asyncio.Event()

    async def hold() -> None:
        assert isinstance(app.model, OpenAIChat)
        async with app.model.slots.take("reply", "qq:group:elsewhere"):
            taken.set()
            await asyncio.sleep(seconds)

    holder = asyncio.create_task(hold())
    await taken.wait()
    try:
        yield
    finally:
        await holder


async def test_a_busy_notice_and_then_the_answer_both_quote_the_message(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app(bot={"busy_notice_seconds": 0.2}, llm={"max_concurrency": 1})
    llm.push(Script(text="咱在这儿呢。"))
    event = group_event("赫萝在吗", to_me=True, message_id=7101)
    busy = qq.personas.get("horo").card.lines.busy
    async with slot_taken(qq, 0.6), app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Quoting(event, [pick(busy, f"{event.user_id}:{event.message_id}")]),
                             result={"message_id": 1})
        ctx.should_call_send(event, Quoting(event, ["咱在这儿呢。"]), result={"message_id": 2})


async def test_a_message_past_the_queue_limit_gets_a_quoted_example_line(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app(bot={"max_queue_seconds": 0.2, "busy_notice_seconds": 0}, llm={"max_concurrency": 1})
    event = group_event("赫萝，你喜欢吃什么？", to_me=True, message_id=7102)
    examples = [e.char for e in qq.personas.get("horo").examples()]
    async with slot_taken(qq, 0.5), app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Quoting(event, examples), result={"message_id": 3})
    assert llm.requests == []  # it never reached the model


async def test_an_example_line_after_a_server_error_quotes_the_message(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app()
    llm.push(Script(status=500, error="boom"))
    event = group_event("赫萝，你好", to_me=True, message_id=7103)
    examples = [e.char for e in qq.personas.get("horo").examples()]
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Quoting(event, examples), result={"message_id": 4})


async def test_a_rate_limit_notice_quotes_the_message(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app(bot={"rate_limit_per_minute": 1})
    llm.push(Script(text="咱在。"))
    first = group_event("赫萝", to_me=True, message_id=7104)
    second = group_event("赫萝赫萝", to_me=True, message_id=7105)
    notice = pick(qq.personas.get("horo").card.lines.rate_limited, f"{second.user_id}:{second.message_id}")
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, first)
        ctx.should_call_send(first, Quoting(first, ["咱在。"]), result={"message_id": 5})
        ctx.receive_event(bot, second)
        ctx.should_call_send(second, Quoting(second, [notice]), result={"message_id": 6})
