"""Picks the adapter-specific half (OneBot v11 or the official API) for a bot and event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nonebot.adapters import Bot, Event

from bot.app import App
from bot.commands.table import PRIVATE_ONLY, SENT_PRIVATELY
from bot.hosting.platforms import holder
from bot.outbound.pacing import Pacing
from core.messages import Incoming
from memory.journal import Route
from plugins.roleplay.outlet import QQOutlet, Wire


@dataclass(frozen=True, slots=True)
class Front:
    """What the matchers need from one adapter: convert, check permission, answer, and its wire for replies."""

    incoming: Callable[[Any, Any], Incoming | None]
    is_admin: Callable[[Any, Any, list[str]], Awaitable[bool]]
    answer: Callable[[Any, Any, str], Awaitable[None]]
    wire: Callable[[Any, Any], Wire]  # how replies to this message event go out (plugins/roleplay/outlet.py)
    # a private message to the asker of a group message; False when it could not be sent. None: the
    # platform cannot message a group member privately at all (the official API)
    answer_privately: Callable[[Any, Any, str], Awaitable[bool]] | None = None
    route: Callable[[Any, Any], Route] | None = None  # answering after a restart (journal); OneBot only


async def answer_command(front: Front, bot: Any, event: Any, msg: Incoming, text: str, private: bool) -> None:
    """A command's answer where it was asked; a private command's from a group only to the asker, privately.

    When that cannot be sent, the group is told so and sees nothing of the answer.
    """
    if not private or msg.is_direct:
        await front.answer(bot, event, text)
        return
    sent = front.answer_privately is not None and await front.answer_privately(bot, event, text)
    await front.answer(bot, event, SENT_PRIVATELY if sent else PRIVATE_ONLY)


def outlet_for(front: Front, bot: Any, event: Any, app: App, wire: Any = None) -> QQOutlet:
    """The outlet a message event's replies go out through: paced, on the adapter's wire (or `wire`)."""
    return QQOutlet(wire or front.wire(bot, event), app.settings.qq, Pacing(app.settings.pacing, app.clocks.sleep),
                    app.clocks)


def front_for(bot: Bot, event: Event) -> Front | None:
    """The front for this adapter's message events; None for anything else, and for a group that
    [qq] groups leaves out (so nothing said there is answered, obeyed or stored)."""
    found = _front(bot, event)
    if found is None:
        return None
    front, group = found
    if group and not holder.get().settings.qq.answers_group(group):
        return None
    return front


def _front(bot: Bot, event: Event) -> tuple[Front, str] | None:
    """The adapter's front and the group the event comes from ("" for a private chat)."""
    from nonebot.adapters.onebot.v11 import Bot as OneBot
    from nonebot.adapters.onebot.v11 import MessageEvent as OneBotMessage

    if isinstance(bot, OneBot) and isinstance(event, OneBotMessage):
        from plugins.roleplay import onebot

        return Front(onebot.incoming, onebot.is_admin, onebot.answer, onebot.OneBotWire, onebot.answer_privately,
                     onebot.onebot_route), onebot.group_of(event)
    try:  # the official adapter is optional in a host project
        from nonebot.adapters.qq import Bot as OfficialBot
        from nonebot.adapters.qq import MessageEvent as OfficialMessage
    except ImportError:
        return None
    if isinstance(bot, OfficialBot) and isinstance(event, OfficialMessage):
        from plugins.roleplay import official

        return Front(official.incoming, official.is_admin, official.answer, official.OfficialWire), \
            official.group_of(event)
    return None
