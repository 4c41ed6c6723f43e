"""The official QQ bot API (nonebot-adapter-qq): events to Incoming, Replies as passive replies."""

from __future__ import annotations

from nonebot.adapters.qq import (
    AtMessageCreateEvent,
    Bot,
    C2CMessageCreateEvent,
    DirectMessageCreateEvent,
    GroupAtMessageCreateEvent,
    MessageEvent,
    MessageSegment,
)
from nonebot.permission import SUPERUSER

from core.messages import Attachment, Clip, Incoming
from core.sanitize import clean_name


def _attachments(event: MessageEvent) -> tuple[Attachment, ...]:
    """Pictures and voice messages as the official API describes them (content_type "image/png", "voice")."""
    out = []
    for item in getattr(event, "attachments", None) or ():
        kind = str(getattr(item, "content_type", "") or "")
        url = str(getattr(item, "url", "") or "")
        if not url:
            continue
        major = "voice" if kind in ("voice", "audio") or kind.startswith("audio/") else kind.split("/")[0]
        out.append(Attachment(major if major in ("image", "voice", "video") else "file", url,
                              str(getattr(item, "filename", "") or ""), kind if "/" in kind else "",
                              int(getattr(item, "size", 0) or 0)))
    return tuple(out)


def incoming(bot: Bot, event: MessageEvent) -> Incoming | None:
    """The plain Incoming for a group @, a private (C2C) message, or a guild @/direct message."""
    text = event.get_plaintext().strip()
    if isinstance(event, GroupAtMessageCreateEvent):
        # the official API only delivers group messages that @ the bot
        author = event.author
        return Incoming(
            platform="qq", channel_id=event.group_openid, user_id=author.member_openid,
            display_name=clean_name(author.username or "") or author.member_openid, text=text,
            message_id=event.id, mentions_bot=True, bot_id=str(bot.self_id), attachments=_attachments(event),
        )
    if isinstance(event, C2CMessageCreateEvent):
        friend = event.author
        return Incoming(
            platform="qq", channel_id="private", user_id=friend.user_openid,
            display_name=clean_name(friend.username or "") or friend.user_openid, text=text,
            message_id=event.id, is_direct=True, bot_id=str(bot.self_id), attachments=_attachments(event),
        )
    if isinstance(event, AtMessageCreateEvent | DirectMessageCreateEvent):
        user = event.author
        direct = isinstance(event, DirectMessageCreateEvent)
        return Incoming(
            platform="qq", channel_id="private" if direct else f"guild:{event.channel_id}",
            user_id=user.id, display_name=clean_name(user.username or "") or user.id, text=text,
            message_id=event.id, is_direct=direct, mentions_bot=not direct,
            author_is_bot=bool(user.bot), bot_id=str(bot.self_id), attachments=_attachments(event),
        )
    return None


def group_of(event: MessageEvent) -> str:
    """The group (openid) or guild a message comes from ("" in a private chat), as [qq] groups lists it."""
    if isinstance(event, GroupAtMessageCreateEvent):
        return event.group_openid
    if isinstance(event, AtMessageCreateEvent):
        return str(event.guild_id)
    return ""


async def is_admin(bot: Bot, event: MessageEvent, superusers: list[str]) -> bool:
    """Superusers everywhere; group owner/admin in groups; anyone in their own private chat."""
    if event.get_user_id() in superusers or await SUPERUSER(bot, event):
        return True
    if isinstance(event, GroupAtMessageCreateEvent):
        return event.author.member_role in ("owner", "admin")
    return isinstance(event, C2CMessageCreateEvent | DirectMessageCreateEvent)


async def answer(bot: Bot, event: MessageEvent, text: str) -> None:
    """A command answer as one text segment (a passive reply to the command)."""
    await bot.send(event, MessageSegment.text(text))


class OfficialWire:
    """The official API answering one message: passive replies (the adapter counts msg_seq), no quote,
    no merged-forward, no clip (it takes audio only as an uploaded silk URL), the emoji as text."""

    quotes = False
    forwards = False
    voices = False

    def __init__(self, bot: Bot, event: MessageEvent):
        self.bot = bot
        self.event = event
        self.sent_at: object = getattr(event, "timestamp", None)

    async def text(self, chunk: str, quote: bool) -> None:
        """One passive reply of one text segment."""
        await self.bot.send(self.event, MessageSegment.text(chunk))

    async def forward(self, name: str, chunks: tuple[str, ...]) -> bool:
        """Not on this API."""
        return False

    async def clip(self, clip: Clip) -> None:
        """Not on this API."""

    async def face(self, emoji: str) -> None:
        """The official API has no faces for bots in groups: the emoji itself, as a passive reply."""
        await self.bot.send(self.event, MessageSegment.text(emoji))
