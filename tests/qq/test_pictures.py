"""Pictures sent to the character on QQ: seen by a model that can see, politely declined by one that can't."""

from __future__ import annotations

from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, Message, MessageSegment
from nonebug import App as NoneBugApp

from memory.turns import SessionKey
from persona.lines import pick
from tests.qq.conftest import SELF_ID, private_event
from tests.support.openai_server import FakeOpenAI, Script

PICTURE = "https://multimedia.nt.qq.com.cn/download?appid=1407&fileid=abc"
# the operator lists QQ's picture host: a listed name is handed on unresolved (nothing resolves names here)
FETCH = {"allow_hosts": ["multimedia.nt.qq.com.cn"]}


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


def with_picture(text: str, message_id: int) -> Any:
    event = private_event(text, message_id=message_id)
    parts = Message([MessageSegment.text(text)] if text else []) + MessageSegment.image(PICTURE)
    parts[-1].data["url"] = PICTURE
    return event.model_copy(update={"message": parts, "original_message": parts, "raw_message": str(parts)})


async def test_a_model_that_sees_gets_the_picture_and_memory_keeps_only_a_mark(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app(llm={"vision": True}, fetch=FETCH)
    llm.push(Script(text="好大一筐苹果！"))
    event = with_picture("你看这个", 951)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text("好大一筐苹果！")), result={"message_id": 1})
    assert llm.images == [PICTURE]
    user = [m for m in llm.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert user["role"] == "user" and isinstance(user["content"], list)
    assert user["content"][0] == {"type": "text", "text": "[图片] 你看这个"}
    assert user["content"][1] == {"type": "image_url", "image_url": {"url": PICTURE}}
    turns = await qq.store.recent(SessionKey("horo", "qq", "dm", "20001"), 10)
    assert [t.text for t in turns] == ["[图片] 你看这个", "好大一筐苹果！"]  # no picture in memory, only the mark


async def test_a_blind_model_never_gets_picture_parts(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app(llm={"vision": False})
    llm.push(Script(text="嗯？"))
    event, alone = with_picture("你看这个", 952), with_picture("", 953)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, event)
        ctx.should_call_send(event, Message(MessageSegment.text("嗯？")), result={"message_id": 2})
        ctx.receive_event(bot, alone)  # a picture alone: the character says it can't see, without the model
        ctx.should_call_send(alone, Message(MessageSegment.text(pick(qq.personas.get("horo").card.lines.no_pictures,
                                                                           "20001:953"))), result={"message_id": 3})
    assert len(llm.requests) == 1 and llm.images == []
    assert all(isinstance(m["content"], str) for m in llm.requests[0]["messages"])


async def test_vision_set_on_for_a_blind_server_costs_one_retry_not_the_model(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app(llm={"vision": True}, fetch=FETCH)
    llm.vision = False  # the server refuses image parts, as a text-only model's server does
    try:
        llm.push(Script(text="咱瞧不见，说说看？"))
        llm.push(Script(text="又是图？"))
        first, second = with_picture("你看", 954), with_picture("再看", 955)
        async with app.test_matcher() as ctx:
            bot = _bot(ctx)
            ctx.receive_event(bot, first)
            ctx.should_call_send(first, Message(MessageSegment.text("咱瞧不见，说说看？")), result={"message_id": 4})
            ctx.receive_event(bot, second)
            ctx.should_call_send(second, Message(MessageSegment.text("又是图？")), result={"message_id": 5})
        assert qq.model.profile.vision is False
        sent = [any(isinstance(m["content"], list) for m in r["messages"]) for r in llm.requests]
        assert sent == [True, False, False]  # refused once, then asked again and never again with pictures
    finally:
        llm.vision = True
