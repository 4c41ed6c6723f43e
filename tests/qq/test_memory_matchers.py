"""/memory, /forget and /why through the QQ matchers (nonebug): own facts, admins for anyone else, answered
privately (a group sees only that the answer went to a private chat)."""

from __future__ import annotations

from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import ActionFailed, Adapter, Bot, Message, MessageSegment
from nonebug import App as NoneBugApp

from bot.commands.table import NOT_FOR_OTHERS, PRIVATE_ONLY, SENT_PRIVATELY
from memory.turns import Fact, FactBook
from tests.qq.conftest import SELF_ID, group_event, private_event
from tests.support.openai_server import FakeOpenAI, Script


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


def _quoted(event: Any, text: str) -> Message:
    return Message([MessageSegment.reply(event.message_id), MessageSegment.at(event.user_id), MessageSegment.text(text)])


async def plant(app: Any, uid: int, *texts: str) -> None:
    facts = tuple(Fact(i, t, 0.0, "group:30001") for i, t in enumerate(texts, start=1))
    await app.store.change_facts("horo", "qq", str(uid), lambda _: FactBook(facts))


def _privately(ctx: Any, event: Any, text: str, mid: int, refused: bool = False) -> None:
    """The answer goes to the asker as a private message (a temporary session from the group); the group
    is told only that, or that it could not be sent."""
    params = {"user_id": event.user_id, "group_id": event.group_id, "message": Message(MessageSegment.text(text))}
    if refused:
        ctx.should_call_api("send_private_msg", params, exception=ActionFailed(retcode=100, status="failed"))
    else:
        ctx.should_call_api("send_private_msg", params, result={"message_id": mid})
    notice = PRIVATE_ONLY if refused else SENT_PRIVATELY
    ctx.should_call_send(event, _quoted(event, " " + notice), result={"message_id": mid + 1})


async def test_memory_and_forget_your_own_facts(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    await plant(qq, 20001, "喜欢苹果", "住在北京")
    shown, forget = group_event("/memory", message_id=700), group_event("/forget 2", message_id=701)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, shown)
        listing = "What 赫萝 remembers about 小明:\n1. 喜欢苹果\n2. 住在北京\n\nStory so far: (no summary yet)\n\n" \
                  "/forget N or /forget all removes facts."
        _privately(ctx, shown, listing, 1)
        ctx.receive_event(bot, forget)
        _privately(ctx, forget, "赫萝 forgot fact 2 about you.", 3)
    assert await qq.store.facts("horo", "qq", "20001") == ["喜欢苹果"]


async def test_a_private_answer_the_implementation_refuses_is_not_posted_to_the_group(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    await plant(qq, 20001, "喜欢苹果")
    shown = group_event("/memory", message_id=705)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), shown)
        listing = "What 赫萝 remembers about 小明:\n1. 喜欢苹果\n\nStory so far: (no summary yet)\n\n" \
                  "/forget N or /forget all removes facts."
        _privately(ctx, shown, listing, 1, refused=True)


async def test_forgetting_another_member_needs_an_admin(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app(qq={"superusers": ["55555"]})
    await plant(qq, 20077, "是程序员")
    by_member = group_event(Message([MessageSegment.text("/forget all "), MessageSegment.at(20077)]), message_id=710)
    by_admin = group_event(Message([MessageSegment.text("/forget all "), MessageSegment.at(20077)]), message_id=711,
                           role="admin")
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, by_member)
        _privately(ctx, by_member, NOT_FOR_OTHERS, 3)
    assert await qq.store.facts("horo", "qq", "20077") == ["是程序员"]
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, by_admin)
        _privately(ctx, by_admin, "赫萝 forgot 1 fact about that user.", 5)
    assert await qq.store.facts("horo", "qq", "20077") == []


async def test_a_private_chat_cannot_forget_for_others(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    await plant(qq, 20077, "是程序员")
    event = private_event("/forget all 20077", message_id=720)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, event)
        refusal = NOT_FOR_OTHERS
        ctx.should_call_send(event, Message(MessageSegment.text(refusal)), result={"message_id": 5})
    assert await qq.store.facts("horo", "qq", "20077") == ["是程序员"]


async def test_why_explains_the_last_reply(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="咱在。"))
    hello, why = private_event("在吗", message_id=730), private_event("/why", message_id=731)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, hello)
        ctx.should_call_send(hello, Message(MessageSegment.text("咱在。")), result={"message_id": 6})
        ctx.receive_event(bot, why)
        text = "The last reply (to 小红, just now) was given only the recent conversation: no memories, facts, lore or passages."
        ctx.should_call_send(why, Message(MessageSegment.text(text)), result={"message_id": 7})
