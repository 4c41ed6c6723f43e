"""Speaking first on QQ: the character's unprompted remark posted into a group (OneBot v11 only).

The official QQ API lets a bot answer messages but not start a conversation in a group, so
`/initiative` stays silent there.
"""

from __future__ import annotations

import logging

from core.config import QQConfig
from core.conversation import Conversation
from core.outlet import Outlet, Poster

log = logging.getLogger(__name__)


def onebot_poster(cfg: QQConfig) -> Poster:
    """A poster for the initiative scheduler: group messages through the bot account that last heard there."""

    async def outlet(where: Conversation, bot_id: str) -> Outlet | None:
        import nonebot
        from nonebot.adapters.onebot.v11 import Bot

        from plugins.roleplay.onebot import OneBotGroup
        from plugins.roleplay.outlet import QQOutlet

        try:
            bot = nonebot.get_bot(bot_id) if bot_id else nonebot.get_bot()
        except (KeyError, ValueError):  # that account is not connected now
            return None
        if not isinstance(bot, Bot) or where.scope != "group":
            return None
        return QQOutlet(OneBotGroup(bot, int(where.id)), cfg)

    return outlet
