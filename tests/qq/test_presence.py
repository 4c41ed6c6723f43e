"""Presence on QQ through the plugin's matchers: emoji for short acks, and speaking first in quiet groups."""

from __future__ import annotations

from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, Message, MessageSegment
from nonebug import App as NoneBugApp

from bot.app import Clocks
from memory.turns import SessionKey
from tests.qq.conftest import SELF_ID, group_event, private_event
from tests.support.openai_server import FakeOpenAI, Script

GROUP = SessionKey("horo", "qq", "group", "30001")


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_short_ack_gets_a_face_not_a_model_reply(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app(initiative={"react_chance": 1.0})
    ack, talk = private_event("哈哈哈", message_id=801), private_event("今天去哪儿了", message_id=802)
    llm.push(Script(text="去了趟集市。"))
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, ack)
        ctx.should_call_send(ack, Message(MessageSegment.face(13)), result={"message_id": 1})
        ctx.receive_event(bot, talk)  # a real message still gets words
        ctx.should_call_send(talk, Message(MessageSegment.text("去了趟集市。")), result={"message_id": 2})
    assert len(llm.requests) == 1
    stored = await qq.store.recent(SessionKey("horo", "qq", "dm", "20001"), 10)
    assert [t.text for t in stored][:1] == ["哈哈哈"]  # the ack is kept as context


async def test_reactions_are_off_by_default(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="嗯？"))
    ack = private_event("ok", message_id=803)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), ack)
        ctx.should_call_send(ack, Message(MessageSegment.text("嗯？")), result={"message_id": 3})


async def test_the_character_speaks_first_in_a_quiet_group_within_its_caps(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    wall = Wall()
    qq = await qq_app(clocks=Clocks(wall=wall), initiative={"quiet_minutes": 30, "max_per_day": 1})
    on = group_event("/initiative on", role="admin", message_id=810)
    chat = group_event("花果山的桃子熟了没有", message_id=811)  # not addressed: kept as context
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, on)
        ctx.should_call_send(on, Message([MessageSegment.reply(810), MessageSegment.at(20001),
                                          MessageSegment.text(" Speaking first: on (after 30 quiet minutes, at most 1 a day).")]),
                             result={"message_id": 4})
        ctx.receive_event(bot, chat)
    assert await qq.initiative.tick() == []  # not quiet long enough yet
    wall.now += 31 * 60
    llm.push(Script(text="说起桃子，咱倒想尝尝。"))
    async with app.test_matcher() as ctx:
        _bot(ctx)
        ctx.should_call_api("send_group_msg", {"group_id": 30001, "message": Message(MessageSegment.text("说起桃子，咱倒想尝尝。"))},
                            result={"message_id": 5})
        assert [c.id for c in await qq.initiative.tick()] == ["30001"]
    prompt = "\n".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert "花果山的桃子熟了没有" in prompt and "安静" in prompt  # the last topic and the stage direction
    turns = [t.text for t in await qq.store.recent(GROUP, 10)]
    assert turns[-1] == "说起桃子，咱倒想尝尝。" and not any("安静" in t for t in turns)  # the nudge is never stored
    wall.now += 3 * 3600
    assert await qq.initiative.tick() == []  # never twice in a row without a human between
    later = group_event("有人吗", message_id=812)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), later)
    wall.now += 31 * 60
    assert await qq.initiative.tick() == []  # the day's cap (1) is spent
    wall.now += 24 * 3600
    llm.push(Script(text="又是新的一天。"))
    async with app.test_matcher() as ctx:
        _bot(ctx)
        ctx.should_call_api("send_group_msg", {"group_id": 30001, "message": Message(MessageSegment.text("又是新的一天。"))},
                            result={"message_id": 6})
        assert len(await qq.initiative.tick()) == 1
    off = group_event("/initiative off", role="admin", message_id=813)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, group_event("在吗在吗", message_id=814))
        ctx.receive_event(bot, off)
        ctx.should_call_send(off, Message([MessageSegment.reply(813), MessageSegment.at(20001),
                                           MessageSegment.text(" Speaking first: off.")]), result={"message_id": 7})
    wall.now += 2 * 24 * 3600
    assert await qq.initiative.tick() == []


async def test_only_admins_switch_initiative_and_never_in_private(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    member = group_event("/initiative on", message_id=820)
    private = private_event("/initiative on", message_id=821)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, member)
        ctx.should_call_send(member, Message([MessageSegment.reply(820), MessageSegment.at(20001), MessageSegment.text(
            " Only admins can change that here: the group owner, admins or the bot's superusers on QQ, Manage Server on Discord.")]),
            result={"message_id": 8})
        ctx.receive_event(bot, private)
        ctx.should_call_send(private, Message(MessageSegment.text("The character speaks first only in group channels.")),
                             result={"message_id": 9})
    assert qq.initiative.watched == {}


async def test_a_greeting_at_a_set_local_time(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    import datetime as dt
    import zoneinfo

    shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
    wall = Wall()
    wall.now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=shanghai).timestamp()
    qq = await qq_app(clocks=Clocks(wall=wall),
                      initiative={"greetings": ["08:30"], "timezone": "Asia/Shanghai", "quiet_minutes": 600})
    await qq.conversations.update(GROUP.conversation, initiative=True)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), group_event("早", message_id=830))
    wall.now += 20 * 60  # 08:20: not yet
    assert await qq.initiative.tick() == []
    wall.now += 15 * 60  # 08:35: the 08:30 greeting is due, though the group was quiet only 35 minutes
    llm.push(Script(text="早呀，今天也要精神些。"))
    async with app.test_matcher() as ctx:
        _bot(ctx)
        ctx.should_call_api("send_group_msg", {"group_id": 30001, "message": Message(MessageSegment.text("早呀，今天也要精神些。"))},
                            result={"message_id": 10})
        assert len(await qq.initiative.tick()) == 1
    prompt = "\n".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert "现在是08:30" in prompt
    wall.now += 60
    assert await qq.initiative.tick() == []  # once per greeting time
