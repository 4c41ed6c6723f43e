"""Picks the adapter-specific half (OneBot v11 or the official API) for a bot and event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nonebot.adapters import Bot, Event

from bot.app import App
from bot.initiative import Poster
from core.config import QQConfig
from core.messages import Incoming, Reply
from memory.journal import Route
from plugins.roleplay.react import official_react, onebot_react
from plugins.roleplay.speak_first import onebot_poster


@dataclass(frozen=True, slots=True)
class Front:
    """What the matchers need from one adapter: convert, check permission, answer, deliver, voice, react, post."""

    incoming: Callable[[Any, Any], Incoming | None]
    is_admin: Callable[[Any, Any, list[str]], Awaitable[bool]]
    answer: Callable[[Any, Any, str], Awaitable[None]]
    deliver: Callable[[Any, Any, Reply, App], Awaitable[None]]
    voice: Callable[[Any, Any, Reply, App], Awaitable[None]]
    react: Callable[[Any, Any, Reply], Awaitable[None]]
    poster: Callable[[QQConfig], Poster] | None = None  # speaking first; the official API cannot start a talk
    route: Callable[[Any, Any], Route] | None = None  # answering after a restart (journal); OneBot only


def front_for(bot: Bot, event: Event) -> Front | None:
    """The front for this adapter's message events; None for anything else."""
    from nonebot.adapters.onebot.v11 import Bot as OneBot
    from nonebot.adapters.onebot.v11 import MessageEvent as OneBotMessage

    if isinstance(bot, OneBot) and isinstance(event, OneBotMessage):
        from plugins.roleplay import onebot
        from plugins.roleplay.replay import onebot_route

        return Front(onebot.incoming, onebot.is_admin, onebot.answer, onebot.deliver, onebot.voice, onebot_react,
                     onebot_poster, onebot_route)
    try:  # the official adapter is optional in a host project
        from nonebot.adapters.qq import Bot as OfficialBot
        from nonebot.adapters.qq import MessageEvent as OfficialMessage
    except ImportError:
        return None
    if isinstance(bot, OfficialBot) and isinstance(event, OfficialMessage):
        from plugins.roleplay import official

        return Front(official.incoming, official.is_admin, official.answer, official.deliver, official.voice,
                     official_react)
    return None
