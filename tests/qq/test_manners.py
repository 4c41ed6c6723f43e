"""QQ matchers: every admin command's permission, argument ranges, calls without words, mass mentions."""

from __future__ import annotations

from typing import Any

import nonebot
import pytest
from nonebot.adapters.onebot.v11 import Adapter, Bot, Message, MessageSegment
from nonebug import App as NoneBugApp

from bot.commands.table import NOT_ALLOWED
from bot.pipeline.exchange import ChannelSettings
from bot.pipeline.stages.guard import CALLED
from core.conversation import Conversation
from memory.turns import SessionKey
from tests.qq.conftest import SELF_ID, group_event, private_event
from tests.support.openai_server import FakeOpenAI, Script

REFUSED = NOT_ALLOWED
# every command that changes a conversation, with an argument it accepts and what that stores
ADMIN = [
    ("/persona set yexiu", "persona", "yexiu"),
    ("/voice on", "voice", True),
    ("/spoiler 12", "max_chapter", 12),
    ("/chance 30", "chance", 0.3),
    ("/bots on", "bots", True),
]


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


def _quoted(event: Any, text: str) -> Message:
    return Message([MessageSegment.reply(event.message_id), MessageSegment.at(event.user_id), MessageSegment.text(" " + text)])


async def _settings(qq: Any, channel: str = "group:30001") -> ChannelSettings:
    scope, _, cid = channel.partition(":")
    return ChannelSettings.parse(await qq.store.settings(Conversation("qq", scope, cid)))  # type: ignore[arg-type]


class _Starts(Message):
    """Matches a quoted answer whose text starts with the given words (compared by nonebug with ==)."""

    def __init__(self, event: Any, start: str):
        super().__init__()
        self.head, self.start = _quoted(event, "")[:2], " " + start

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message) and len(other) == 3 and other[:2] == self.head
            and other[2].type == "text" and str(other[2].data["text"]).startswith(self.start)
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(("command", "field", "value"), ADMIN)
async def test_members_cannot_change_a_group_but_owners_admins_and_superusers_can(
    app: NoneBugApp, qq_app: Any, command: str, field: str, value: Any
) -> None:
    qq = await qq_app(qq={"superusers": ["55555"]})
    member = group_event(command, message_id=800)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), member)
        ctx.should_call_send(member, _quoted(member, REFUSED), result={"message_id": 1})
    assert getattr(await _settings(qq), field) in (None, "")
    for i, (user, role) in enumerate([(20001, "owner"), (20002, "admin"), (55555, "member")]):
        allowed = group_event(command, user_id=user, role=role, message_id=801 + i)
        async with app.test_matcher() as ctx:
            ctx.receive_event(_bot(ctx), allowed)
            ctx.should_call_send(allowed, _Starts(allowed, ""), result={"message_id": 2 + i})
        assert getattr(await _settings(qq), field) == value
        await qq.store.set_setting(Conversation("qq", "group", "30001"), field, None)


async def test_reset_is_refused_to_members_and_allowed_to_admins(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app()
    key = SessionKey("horo", "qq", "group", "30001")
    keep = group_event("今天天气不错", message_id=810)
    member, admin = group_event("/reset", message_id=811), group_event("/reset", role="admin", message_id=812)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, keep)
        ctx.receive_event(bot, member)
        ctx.should_call_send(member, _quoted(member, REFUSED), result={"message_id": 1})
    assert len(await qq.store.recent(key, 10)) == 1
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), admin)
        ctx.should_call_send(admin, _quoted(admin, "赫萝 forgot this conversation."), result={"message_id": 2})
    assert await qq.store.recent(key, 10) == []


@pytest.mark.parametrize(("command", "field", "value"), ADMIN)
async def test_a_private_chat_belongs_to_its_user(app: NoneBugApp, qq_app: Any, command: str, field: str, value: Any) -> None:
    qq = await qq_app()
    event = private_event(command, message_id=820)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _PrivateAny(), result={"message_id": 1})
    assert getattr(await _settings(qq, "dm:20001"), field) == value


class _PrivateAny(Message):
    """Any one-text-segment answer that is not the refusal."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and len(other) == 1 and other[0].type == "text" and REFUSED not in str(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/spoiler 99999999999999999999", "Usage: /spoiler N (a chapter from 1 to 100000), or /spoiler off"),
        ("/spoiler 100001", "Usage: /spoiler N (a chapter from 1 to 100000), or /spoiler off"),
        ("/spoiler 三", "Usage: /spoiler N (a chapter from 1 to 100000), or /spoiler off"),
        ("/spoiler -3", "Usage: /spoiler N (a chapter from 1 to 100000), or /spoiler off"),
        ("/chance 150", "Usage: /chance PERCENT (a whole number from 0 to 100; 0 turns it off)"),
        ("/chance 0.5", "Usage: /chance PERCENT (a whole number from 0 to 100; 0 turns it off)"),
        ("/voice maybe", "Usage: /voice on|off"),
        ("/bots yes", "Usage: /bots on|off"),
        ("/persona set \u202enobody\x1b[0m", "No persona 'nobody[0m'; choose one of: horo, wukong, yexiu"),
    ],
)
async def test_arguments_out_of_range_are_refused_and_nothing_is_stored(
    app: NoneBugApp, qq_app: Any, command: str, answer: str
) -> None:
    qq = await qq_app()
    event = group_event(command, role="owner", message_id=830)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, answer), result={"message_id": 1})
    assert await qq.store.settings(Conversation("qq", "group", "30001")) == {}


async def test_arguments_as_people_type_them_are_read(app: NoneBugApp, qq_app: Any) -> None:
    qq = await qq_app()
    full_width, percent = group_event("/spoiler ３", role="owner", message_id=840), group_event("/chance 30%", role="owner", message_id=841)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, full_width)
        ctx.should_call_send(full_width, _quoted(full_width, "Spoiler limit: chapter 3."), result={"message_id": 1})
        ctx.receive_event(bot, percent)
        ctx.should_call_send(percent, _quoted(percent, "Chance to join in unprompted: 30%."), result={"message_id": 2})
    settings = await _settings(qq)
    assert (settings.max_chapter, settings.chance) == (3, 0.3)


async def test_an_at_with_no_words_is_answered(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="叫咱何事？"))
    event = group_event("", to_me=True, message_id=850)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, "叫咱何事？"), result={"message_id": 1})
    users = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert users[-1] == f"小明: {CALLED['zh']}"


async def test_an_at_with_only_a_picture_gets_a_line_without_the_model(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app()
    event = group_event(Message(MessageSegment.image("https://gchat.qpic.cn/a.jpg")), to_me=True, message_id=851)
    line = qq.personas.get("horo").card.lines.no_pictures[0]
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, _quoted(event, line), result={"message_id": 1})
    assert llm.requests == []


async def test_mass_mentions_from_the_model_go_out_defused_as_plain_text(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    llm.push(Script(text="@全体成员开会了，@everyoneHolo 也来"))
    event = private_event("喊大家开会", message_id=852)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(
            event, Message(MessageSegment.text("@\u200b全体成员开会了，@\u200beveryoneHolo 也来")), result={"message_id": 1}
        )


async def test_over_the_limit_one_notice_then_silence(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    qq = await qq_app(bot={"rate_limit_per_minute": 1})
    first, second, third = (private_event(f"第{i}句", message_id=860 + i) for i in range(3))
    notice = qq.personas.get("horo").card.lines.rate_limited
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        ctx.receive_event(bot, first)
        ctx.should_call_send(first, Message(MessageSegment.text("嗯。")), result={"message_id": 1})
        ctx.receive_event(bot, second)
        ctx.should_call_send(second, _OneOf(notice), result={"message_id": 2})
        ctx.receive_event(bot, third)
    stored = await qq.store.recent(SessionKey("horo", "qq", "dm", "20001"), 10)
    assert [(t.text, t.addressed) for t in stored if t.role == "user"] == [("第0句", True), ("第1句", False), ("第2句", False)]


class _OneOf(Message):
    """A one-text-segment message whose text is one of the given lines."""

    def __init__(self, lines: list[str]):
        super().__init__()
        self.lines = lines

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and len(other) == 1 and str(other[0].data.get("text")) in self.lines

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]
