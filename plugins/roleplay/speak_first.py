"""Speaking first on QQ: the character's unprompted remark posted into a group (OneBot v11 only).

The official QQ API lets a bot answer messages but not start a conversation in a group, so
`/initiative` stays silent there.
"""

from __future__ import annotations

from bot.initiative import Poster
from bot.split import split_text
from core.config import QQConfig
from core.conversation import Conversation


def onebot_poster(cfg: QQConfig) -> Poster:
    """A poster for the initiative scheduler: group messages through the bot account that last heard there."""

    async def post(where: Conversation, bot_id: str, text: str) -> None:
        import nonebot
        from nonebot.adapters.onebot.v11 import Bot, Message, MessageSegment

        bot = nonebot.get_bot(bot_id) if bot_id else nonebot.get_bot()
        if not isinstance(bot, Bot) or where.scope != "group":
            return
        for chunk in split_text(text, cfg.message_chars):
            await bot.send_group_msg(group_id=int(where.id), message=Message(MessageSegment.text(chunk)))

    return post
