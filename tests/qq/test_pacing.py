"""Human pacing on QQ through the plugin's matchers (nonebug): paced parts, one merged-forward, voice last."""

from __future__ import annotations

from typing import Any

import nonebot
import pytest
from nonebot.adapters.onebot.v11 import Adapter, Bot, Message, MessageSegment
from nonebot.adapters.qq import Bot as OfficialBot
from nonebot.adapters.qq import GroupAtMessageCreateEvent
from nonebot.adapters.qq import MessageSegment as OfficialSegment
from nonebot.adapters.qq.config import BotInfo
from nonebot.adapters.qq.models import GroupMemberAuthor
from nonebug import App as NoneBugApp

from tests.qq.conftest import SELF_ID, group_event, private_event
from tests.qq.test_matchers import _AnyRecord
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.texts import unbroken_chinese
from tests.voice.vits_server import FakeVits

PACING = {"enabled": True, "chars_per_second": 10.0, "min_delay_seconds": 0.5, "max_delay_seconds": 2.0,
          "split_over_chars": 10}
SHORT, MIDDLE, LONG = "嗯。", "咱今天去了镇上的集市。", "买了好多苹果，还有一小袋麦子，汝要不要尝尝看，味道可是相当不错的呢？"


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


def _quoted(event: Any, text: str) -> Message:
    return Message([MessageSegment.reply(event.message_id), MessageSegment.at(event.user_id), MessageSegment.text(text)])


async def _paced(qq_app: Any, sent_at: float, spent: float = 0.0, **sections: Any) -> list[float]:
    """The App with pacing on, a recording sleep, and a wall clock `spent` seconds after `sent_at`."""
    app = await qq_app(pacing=PACING, **sections)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    app.clocks.sleep = sleep
    app.clocks.wall = lambda: sent_at + spent
    return slept


async def test_three_sentences_go_as_three_messages_and_only_the_first_quotes(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    event = group_event("讲讲今天", to_me=True)
    slept = await _paced(qq_app, event.time)
    llm.push(Script(text=SHORT + MIDDLE + LONG))
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, " " + SHORT), result={"message_id": 1})
        ctx.should_call_send(event, Message(MessageSegment.text(MIDDLE)), result={"message_id": 2})
        ctx.should_call_send(event, Message(MessageSegment.text(LONG)), result={"message_id": 3})
    assert slept == pytest.approx([0.5, 1.1, 2.0])  # growing with length, held between 0.5 and 2 s


async def test_the_first_delay_counts_the_time_since_the_message_was_sent(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    event = private_event("讲讲今天")
    slept = await _paced(qq_app, event.time, spent=0.6)
    llm.push(Script(text=MIDDLE + LONG))
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text(MIDDLE)), result={"message_id": 1})
        ctx.should_call_send(event, Message(MessageSegment.text(LONG)), result={"message_id": 2})
    assert slept == pytest.approx([0.5, 2.0])


async def test_a_short_reply_is_one_message(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    event = private_event("在吗")
    slept = await _paced(qq_app, event.time, spent=5.0)
    llm.push(Script(text="嗯。咱在。"))
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text("嗯。咱在。")), result={"message_id": 1})
    assert slept == []  # five seconds already passed: no wait


async def test_a_merged_forward_follows_its_quoting_first_part_after_one_delay(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    event = group_event("讲个长故事", to_me=True)
    slept = await _paced(qq_app, event.time, qq={"message_chars": 60, "forward_over_chars": 80})
    first, second, third = unbroken_chinese(44, 1) + "。", unbroken_chinese(44, 2) + "。", unbroken_chinese(44, 3) + "。"
    llm.push(Script(text=f"{first}\n\n{second}\n\n{third}"))
    nodes = [MessageSegment.node_custom(int(SELF_ID), "赫萝", Message(MessageSegment.text(t))) for t in (second, third)]
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, " " + first), result={"message_id": 4})
        ctx.should_call_api("send_group_forward_msg", {"group_id": 30001, "messages": nodes}, {"message_id": 5})
    assert slept == pytest.approx([2.0])


async def test_the_voice_clip_follows_the_last_part(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    event = private_event("说话", message_id=510)
    with FakeVits() as vits:
        await _paced(qq_app, event.time, voice={"enabled": True, "engine": "vits", "vits_url": vits.url})
        llm.push(Script(text=SHORT + MIDDLE + LONG), Script(text="わっちは町へ行った。"))
        async with app.test_matcher() as ctx:
            ctx.receive_event(_bot(ctx), event)
            ctx.should_call_send(event, Message(MessageSegment.text(SHORT)), result={"message_id": 1})
            ctx.should_call_send(event, Message(MessageSegment.text(MIDDLE)), result={"message_id": 2})
            ctx.should_call_send(event, Message(MessageSegment.text(LONG)), result={"message_id": 3})
            ctx.should_call_send(event, _AnyRecord(), result={"message_id": 4})


async def test_official_api_passive_replies_are_paced(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    event = GroupAtMessageCreateEvent(
        __type__="GROUP_AT_MESSAGE_CREATE", id="m-9", event_id="e-m-9", content=" 讲讲今天",
        timestamp="2026-01-01T00:00:00+08:00", group_id="G1", group_openid="G1",
        author=GroupMemberAuthor(id="u", member_openid="OPENID-7", bot=False, member_role="member"),  # type: ignore[arg-type]
    )
    slept = await _paced(qq_app, 1767196800.0, spent=0.3)  # the event's timestamp, in epoch seconds
    llm.push(Script(text=SHORT + MIDDLE + LONG))
    async with app.test_matcher() as ctx:
        bot = ctx.create_bot(base=OfficialBot, self_id="app-1", bot_info=BotInfo(id="app-1", secret="s"))
        ctx.receive_event(bot, event)
        for part in (SHORT, MIDDLE, LONG):
            ctx.should_call_send(event, OfficialSegment.text(part), result=None)
    assert slept == pytest.approx([0.2, 1.1, 2.0])
