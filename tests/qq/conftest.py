"""Fixtures: the roleplay plugin loaded into nonebug's nonebot, an App it answers with, events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import nonebot
import pytest
from nonebot.adapters.onebot.v11 import Adapter, GroupMessageEvent, Message, MessageSegment, PrivateMessageEvent
from nonebot.adapters.onebot.v11.event import Sender

from bot.app import App
from bot.hosting.platforms import holder
from tests.support.openai_server import FakeOpenAI

SELF_ID = "10000"


@pytest.fixture(scope="session")
def roleplay_plugin(nonebug_init: None) -> Any:
    """The OneBot v11 adapter registered and the plugin loaded (once) into nonebug's nonebot."""
    driver = nonebot.get_driver()
    if Adapter.get_name() not in nonebot.get_adapters():
        driver.register_adapter(Adapter)
    return nonebot.load_plugin("plugins.roleplay")


@pytest.fixture
async def qq_app(
    roleplay_plugin: Any, make_settings: Any, app_factory: Any, llm: FakeOpenAI
) -> AsyncIterator[Callable[..., Any]]:
    """`await qq_app(qq={...}, clocks=Clocks(...), ...)` -> the App the plugin's matchers now use."""

    from plugins.roleplay.speak_first import onebot_poster  # loaded by nonebot (roleplay_plugin) by now

    async def open_app(clocks: Any = None, **sections: dict[str, Any]) -> App:
        sections["llm"] = {"base_url": llm.base_url, "model": "test-model", "retry_after": 0, **sections.get("llm", {})}
        sections["memory"] = {"summary": False, "facts": False, **sections.get("memory", {})}
        settings = make_settings(**sections)
        # as the platforms open it: with the plugin's way to speak first into a group
        app: App = await app_factory(settings, clocks=clocks, posters={"qq": onebot_poster(settings.qq)})
        holder.set(app)
        return app

    yield open_app
    holder.set(None)


def group_event(
    text: str | Message,
    *,
    user_id: int = 20001,
    group_id: int = 30001,
    message_id: int = 101,
    to_me: bool = False,
    card: str = "小明",
    role: str = "member",
) -> GroupMessageEvent:
    """A group message as the OneBot v11 adapter builds it."""
    message = text if isinstance(text, Message) else Message(MessageSegment.text(text))
    return GroupMessageEvent(
        time=int(time.time()), self_id=int(SELF_ID), post_type="message", sub_type="normal",
        user_id=user_id, message_type="group", message_id=message_id, message=message,
        original_message=message, raw_message=str(message), font=0, group_id=group_id, to_me=to_me,
        sender=Sender(user_id=user_id, nickname="nick", card=card, role=role),
    )


def private_event(text: str, *, user_id: int = 20001, message_id: int = 201) -> PrivateMessageEvent:
    """A private (friend) message."""
    message = Message(MessageSegment.text(text))
    return PrivateMessageEvent(
        time=int(time.time()), self_id=int(SELF_ID), post_type="message", sub_type="friend",
        user_id=user_id, message_type="private", message_id=message_id, message=message,
        original_message=message, raw_message=text, font=0, to_me=True,
        sender=Sender(user_id=user_id, nickname="小红"),
    )
