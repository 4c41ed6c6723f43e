"""OneBot messages answered after a restart: their route, and the way back through a connected bot.

The route keeps what a reply needs: the bot account (self id), group or private, the group and
user ids, the message id (quoted by the reply) and the message's time. After a restart the reply
goes out through whichever OneBot connection of that account is up, waiting for it if none is yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bot.app import App
from core.messages import Incoming
from memory.journal import Entry
from plugins.roleplay.fronts import Front, front_for
from plugins.roleplay.onebot import FRONT as FRONT  # the name the plugin registers this replayer under

POLL_SECONDS = 0.2  # how often a replay looks for its account's connection
Answer = Callable[[App, Front, Any, Any, Incoming], Awaitable[None]]


def event_of(entry: Entry) -> Any:
    """A OneBot message event carrying the route's ids: what the reply path reads (the text comes
    from the journaled Incoming, not from this event)."""
    from nonebot.adapters.onebot.v11 import GroupMessageEvent, Message, PrivateMessageEvent

    ids, msg = entry.route.ids, entry.incoming
    fields: dict[str, Any] = {
        "time": int(ids["time"]), "self_id": int(ids["self_id"]), "post_type": "message",
        "message_type": ids["message_type"], "user_id": int(ids["user_id"]), "message_id": int(ids["message_id"]),
        "message": Message(), "raw_message": "", "font": 0, "to_me": msg.is_direct or msg.mentions_bot,
        "sender": {"user_id": int(ids["user_id"]), "nickname": msg.display_name},
    }
    if ids["message_type"] == "group":
        return GroupMessageEvent.model_validate({**fields, "sub_type": "normal", "group_id": int(ids["group_id"])})
    return PrivateMessageEvent.model_validate({**fields, "sub_type": "friend"})


class OneBotReplayer:
    """Answers journaled OneBot messages through the connection of the account that received them."""

    def __init__(self, app: App, answer: Answer):
        self.app = app
        self._answer = answer

    @staticmethod
    def _bot(self_id: str) -> Any:
        import nonebot
        from nonebot.adapters.onebot.v11 import Bot

        bot = nonebot.get_bots().get(self_id)
        return bot if isinstance(bot, Bot) else None

    async def ready(self, entry: Entry, patience: float) -> bool:
        """Wait (at most `patience` seconds) until the receiving account is connected."""
        try:
            async with asyncio.timeout(patience):
                while self._bot(entry.route.ids.get("self_id", "")) is None:
                    await asyncio.sleep(POLL_SECONDS)
        except TimeoutError:
            return False
        return True

    async def answer(self, entry: Entry) -> bool:
        """The message through the chain, the reply through the account's connection."""
        bot = self._bot(entry.route.ids.get("self_id", ""))
        if bot is None:
            raise ConnectionError("the account disconnected before the message could be answered")
        event = event_of(entry)
        front = front_for(bot, event)
        if front is None:
            return False
        await self._answer(self.app, front, bot, event, entry.incoming)
        return True
