"""The plugin's matchers driven with nonebug: events in, the exact messages and API calls out."""

from __future__ import annotations

from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import ActionFailed, Adapter, Bot, Message, MessageSegment
from nonebug import App as NoneBugApp

from bot.commands.table import NOT_ALLOWED
from bot.pipeline.exchange import ChannelSettings
from core.conversation import Conversation
from memory.turns import SessionKey
from tests.qq.conftest import SELF_ID, group_event, private_event
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.texts import unbroken_chinese
from tests.voice.vits_server import FakeVits


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


def _quoted(event: Any, text: str) -> Message:
    return Message([MessageSegment.reply(event.message_id), MessageSegment.at(event.user_id), MessageSegment.text(text)])


async def test_group_mention_is_answered_with_quote_at_and_text(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="咱在这儿呢。"))
    event = group_event("赫萝你好", to_me=True)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, event)
        ctx.should_call_send(event, _quoted(event, " 咱在这儿呢。"), result={"message_id": 900})
    prompt = "\n".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert "赫萝你好" in prompt


async def test_unaddressed_group_message_is_stored_as_context_keyed_by_qq_number(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app()
    event = group_event("今天天气不错", user_id=20077, card="冒充的名字")
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
    turns = await qq.store.recent(SessionKey("horo", "qq", "group", "30001"), 10)
    assert [(t.text, t.user_id, t.name, t.addressed) for t in turns] == [("今天天气不错", "20077", "冒充的名字", False)]
    assert llm.requests == []


async def test_private_message_is_always_answered_without_quote(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="汝找咱何事？"))
    event = private_event("在吗")
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text("汝找咱何事？")), result={"message_id": 901})


async def test_cq_looking_model_text_stays_one_text_segment(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="[CQ:at,qq=all] 都来看"))
    event = private_event("喊大家")
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text("[CQ:at,qq=all] 都来看")), result={"message_id": 902})


async def test_long_reply_is_split_into_several_messages(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app(qq={"message_chars": 60, "forward_over_chars": 0})
    first, second = unbroken_chinese(44, 1) + "。", unbroken_chinese(44, 2) + "。"
    llm.push(Script(text=f"{first}\n\n{second}"))
    event = group_event("讲个长故事", to_me=True)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, " " + first), result={"message_id": 903})
        ctx.should_call_send(event, Message(MessageSegment.text(second)), result={"message_id": 904})


async def test_reply_past_the_threshold_goes_out_as_merged_forward_after_a_quoting_first_part(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    await qq_app(qq={"message_chars": 60, "forward_over_chars": 80})
    first, second, third = unbroken_chinese(44, 1) + "。", unbroken_chinese(44, 2) + "。", unbroken_chinese(44, 3) + "。"
    llm.push(Script(text=f"{first}\n\n{second}\n\n{third}"))
    event = group_event("讲个长故事", to_me=True)
    nodes = [
        MessageSegment.node_custom(int(SELF_ID), "赫萝", Message(MessageSegment.text(t))) for t in (second, third)
    ]
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, " " + first), result={"message_id": 904})  # a forward cannot quote
        ctx.should_call_api("send_group_forward_msg", {"group_id": 30001, "messages": nodes}, {"message_id": 905})


async def test_refused_merged_forward_falls_back_to_separate_messages(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    await qq_app(qq={"message_chars": 60, "forward_over_chars": 80})
    first, second = unbroken_chinese(44, 1) + "。", unbroken_chinese(44, 2) + "。"
    llm.push(Script(text=f"{first}{second}"))
    event = private_event("讲个长故事", message_id=600)
    nodes = [
        MessageSegment.node_custom(int(SELF_ID), "赫萝", Message(MessageSegment.text(t))) for t in (first, second)
    ]
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_api(
            "send_private_forward_msg", {"user_id": 20001, "messages": nodes},
            exception=ActionFailed(retcode=1404, status="failed", message="unsupported"),
        )
        ctx.should_call_send(event, Message(MessageSegment.text(first)), result={"message_id": 10})
        ctx.should_call_send(event, Message(MessageSegment.text(second)), result={"message_id": 11})


async def test_persona_list_and_member_cannot_switch_persona_in_group(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    listing = group_event("/persona list", message_id=300)
    switch = group_event("/persona set yexiu", message_id=301)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, listing)
        ctx.should_call_send(listing, _quoted(listing, " " + _listing(qq)), result={"message_id": 1})
        ctx.receive_event(bot, switch)
        ctx.should_call_send(
            switch,
            _quoted(switch, " " + NOT_ALLOWED),
            result={"message_id": 2},
        )
    assert ChannelSettings.parse(await qq.store.settings(Conversation("qq", "group", "30001"))).persona == ""


def _listing(app: Any) -> str:
    return "\n".join(f"{pid} — {app.personas.get(pid).name}" for pid in app.personas.ids())


async def test_group_admin_and_superuser_change_group_settings(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app(qq={"superusers": ["55555"]})
    by_admin = group_event("/persona set yexiu", role="admin", message_id=310)
    by_superuser = group_event("/voice on", user_id=55555, message_id=311)
    spoiler = group_event("/spoiler 12", role="owner", message_id=312)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, by_admin)
        yexiu = qq.personas.get("yexiu")
        greeting = yexiu.render(yexiu.greetings()[0], "小明")
        ctx.should_call_send(by_admin, _quoted(by_admin, " " + greeting), result={"message_id": 3})
        ctx.receive_event(bot, by_superuser)
        ctx.should_call_send(by_superuser, _quoted(by_superuser, " Voice on."), result={"message_id": 4})
        ctx.receive_event(bot, spoiler)
        ctx.should_call_send(spoiler, _quoted(spoiler, " Spoiler limit: chapter 12."), result={"message_id": 5})
    settings = ChannelSettings.parse(await qq.store.settings(Conversation("qq", "group", "30001")))
    assert (settings.persona, settings.voice, settings.max_chapter) == ("yexiu", True, 12)


async def test_reset_in_private_chat_forgets_the_conversation(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app()
    llm.push(Script(text="记住了。"))
    hello, reset = private_event("记住我叫阿明", message_id=400), private_event("/reset", message_id=401)
    key = SessionKey("horo", "qq", "dm", "20001")
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, hello)
        ctx.should_call_send(hello, Message(MessageSegment.text("记住了。")), result={"message_id": 6})
    assert len(await qq.store.recent(key, 10)) == 2
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, reset)
        ctx.should_call_send(reset, Message(MessageSegment.text("赫萝 forgot this conversation.")), result={"message_id": 7})
    assert await qq.store.recent(key, 10) == []


async def test_voice_clip_follows_the_text_as_a_base64_record_segment(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    with FakeVits() as vits:
        qq = await qq_app(voice={"enabled": True, "engine": "vits", "vits_url": vits.url})
        llm.push(Script(text="咱在。"), Script(text="わっちはここにおる。"))
        event = private_event("在吗", message_id=500)
        async with app.test_matcher() as ctx:
            bot = _bot(ctx)
            ctx.receive_event(bot, event)
            ctx.should_call_send(event, Message(MessageSegment.text("咱在。")), result={"message_id": 8})
            ctx.should_call_send(event, _AnyRecord(), result={"message_id": 9})
        assert [r.params["text"] for r in vits.received] == ["わっちはここにおる。"]
    assert qq.settings.voice.enabled


class _AnyRecord(Message):
    """Matches a message that is one record segment carrying base64 audio (compared by nonebug with ==)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or len(other) != 1 or other[0].type != "record":
            return False
        file = str(other[0].data["file"])
        return file.startswith("base64://") and len(file) > 200

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]


async def test_lore_is_open_to_members_and_usage_is_explained(app: NoneBugApp, qq_app: Any) -> None:
    await qq_app()
    lore, empty = group_event("/lore 约伊兹", message_id=700), group_event("/lore", message_id=701)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, lore)
        ctx.should_call_send(lore, _quoted(lore, " Nothing found."), result={"message_id": 12})
        ctx.receive_event(bot, empty)
        ctx.should_call_send(empty, _quoted(empty, " Usage: /lore QUERY"), result={"message_id": 13})
