"""A short acknowledgement answered with a feeling, not a sentence: a QQ face (OneBot) or the emoji (official API)."""

from __future__ import annotations

from typing import Any

from bot.reactions import QQ_FACE
from core.messages import Reply


async def onebot_react(bot: Any, event: Any, reply: Reply) -> None:
    """A `face` segment quoting the message in groups (every OneBot v11 implementation shows it)."""
    from nonebot.adapters.onebot.v11 import GroupMessageEvent, Message, MessageSegment

    face = MessageSegment.face(QQ_FACE.get(reply.text, 76))
    head = Message(MessageSegment.reply(event.message_id)) if isinstance(event, GroupMessageEvent) else Message()
    await bot.send(event, head + face)


async def official_react(bot: Any, event: Any, reply: Reply) -> None:
    """The official API has no faces for bots in groups: the emoji itself, as a passive reply."""
    from nonebot.adapters.qq import MessageSegment

    await bot.send(event, MessageSegment.text(reply.text))
