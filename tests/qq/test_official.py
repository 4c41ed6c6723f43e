"""The official QQ bot API (nonebot-adapter-qq) events through the same matchers, with nonebug."""

from __future__ import annotations

from typing import Any

from nonebot.adapters.qq import Bot, C2CMessageCreateEvent, GroupAtMessageCreateEvent, MessageSegment
from nonebot.adapters.qq.config import BotInfo
from nonebot.adapters.qq.models import FriendAuthor, GroupMemberAuthor
from nonebug import App as NoneBugApp

from bot.commands.table import NOT_ALLOWED, PRIVATE_ONLY
from bot.pipeline.exchange import ChannelSettings
from core.conversation import Conversation
from memory.turns import Fact, FactBook, SessionKey
from tests.support.openai_server import FakeOpenAI, Script


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, self_id="app-1", bot_info=BotInfo(id="app-1", secret="s"))


def _group_at(content: str, *, role: str = "member", mid: str = "m-1") -> GroupAtMessageCreateEvent:
    return GroupAtMessageCreateEvent(
        __type__="GROUP_AT_MESSAGE_CREATE", id=mid, event_id="e-" + mid, content=content,
        timestamp="2026-01-01T00:00:00+08:00", group_id="G1", group_openid="G1",
        author=GroupMemberAuthor(id="u", member_openid="OPENID-7", bot=False, member_role=role),  # type: ignore[arg-type]
    )


async def test_group_at_is_answered_as_text_and_kept_under_the_member_openid(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI
) -> None:
    qq = await qq_app()
    llm.push(Script(text="[CQ:at,qq=all] 咱在。"))
    event = _group_at(" 你好")
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, MessageSegment.text("[CQ:at,qq=all] 咱在。"), result=None)
    turns = await qq.store.recent(SessionKey("horo", "qq", "group", "G1"), 10)
    assert [(t.role, t.user_id, t.text) for t in turns] == [("user", "OPENID-7", "你好"), ("assistant", "", "[CQ:at,qq=all] 咱在。")]


async def test_group_settings_need_owner_or_admin_role(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    member, owner = _group_at("/voice on", mid="m-2"), _group_at("/voice on", role="owner", mid="m-3")
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, member)
        ctx.should_call_send(
            member, MessageSegment.text(NOT_ALLOWED), result=None
        )
        ctx.receive_event(bot, owner)
        ctx.should_call_send(owner, MessageSegment.text("Voice on."), result=None)
    assert ChannelSettings.parse(await qq.store.settings(Conversation("qq", "group", "G1"))).voice is True


async def test_a_private_command_in_a_group_is_refused_and_does_nothing(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    book = FactBook((Fact(1, "喜欢苹果", 0.0, "group:G1"),))
    await qq.store.change_facts("horo", "qq", "OPENID-7", lambda _: book)
    memory, forget = _group_at("/memory", mid="m-4"), _group_at("/forget all", mid="m-5")
    async with app.test_matcher() as ctx:  # the official API cannot write to a member privately
        bot = _bot(ctx)
        ctx.receive_event(bot, memory)
        ctx.should_call_send(memory, MessageSegment.text(PRIVATE_ONLY), result=None)
        ctx.receive_event(bot, forget)
        ctx.should_call_send(forget, MessageSegment.text(PRIVATE_ONLY), result=None)
    assert await qq.store.facts("horo", "qq", "OPENID-7") == ["喜欢苹果"]


async def test_c2c_message_is_a_direct_chat(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app()
    llm.push(Script(text="汝来了。"))
    event = C2CMessageCreateEvent(
        __type__="C2C_MESSAGE_CREATE", id="c-1", event_id="e-c-1", content="在吗", timestamp="2026-01-01T00:00:00+08:00",
        author=FriendAuthor(id="f", user_openid="USER-9"),
    )
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, MessageSegment.text("汝来了。"), result=None)
    assert [t.text for t in await qq.store.recent(SessionKey("horo", "qq", "dm", "USER-9"), 10)] == ["在吗", "汝来了。"]


def _c2c(content: str, attachments: list[dict[str, Any]], mid: str) -> C2CMessageCreateEvent:
    return C2CMessageCreateEvent(
        __type__="C2C_MESSAGE_CREATE", id=mid, event_id="e-" + mid, content=content,
        timestamp="2026-01-01T00:00:00+08:00", author=FriendAuthor(id="f", user_openid="USER-9"),
        attachments=attachments,  # type: ignore[arg-type]
    )


async def test_official_pictures_and_voice_messages_reach_the_pipeline(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI, tmp_path: Any
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.support.stt_server import FakeTranscriber
    from tests.voice.test_hearing import silk

    clip = silk(0.5)

    class Files(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(clip)))
            self.end_headers()
            self.wfile.write(clip)

    files = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    picture = "https://multimedia.nt.qq.com.cn/download?fileid=p1"
    try:
        with FakeTranscriber(text="晚饭吃什么") as stt:
            # the operator lists the picture host and the local file server
            qq = await qq_app(llm={"vision": True}, voice={"stt_url": stt.url},
                              fetch={"allow_hosts": ["multimedia.nt.qq.com.cn", "127.0.0.1"]})
            llm.push(Script(text="好看。"), Script(text="吃苹果。"))
            seen = _c2c("看", [{"content_type": "image/jpeg", "url": picture, "size": 1000}], "c-2")
            heard = _c2c("", [{"content_type": "voice", "url": f"http://127.0.0.1:{files.server_address[1]}/v.silk"}], "c-3")
            async with app.test_matcher() as ctx:
                bot = _bot(ctx)
                ctx.receive_event(bot, seen)
                ctx.should_call_send(seen, MessageSegment.text("好看。"), result=None)
                ctx.receive_event(bot, heard)
                ctx.should_call_send(heard, MessageSegment.text("吃苹果。"), result=None)
            assert llm.images == [picture] and stt.uploads[-1].filename.endswith(".wav")
    finally:
        files.shutdown()
        files.server_close()
    texts = [t.text for t in await qq.store.recent(SessionKey("horo", "qq", "dm", "USER-9"), 10)]
    assert texts == ["[图片] 看", "好看。", "（语音）晚饭吃什么", "吃苹果。"]


async def test_a_group_left_off_the_list_is_not_heard(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    """[qq] groups names official groups by their openid; others are neither answered nor remembered."""
    qq = await qq_app(qq={"groups": ["G2"]})
    event, command = _group_at(" 你好", mid="m-20"), _group_at("/voice on", role="owner", mid="m-21")
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, event)
        ctx.receive_event(bot, command)  # no send expected: nonebug fails on any unexpected call
    assert llm.requests == [] and await qq.store.recent(SessionKey("horo", "qq", "group", "G1"), 10) == []
    assert ChannelSettings.parse(await qq.store.settings(Conversation("qq", "group", "G1"))).voice is not True
