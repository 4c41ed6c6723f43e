"""OneBot v11 (NapCat, Lagrange, LLOneBot): events to Incoming, Replies to message segments."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nonebot.adapters.onebot.v11 import (
    ActionFailed,
    Bot,
    GroupMessageEvent,
    Message,
    MessageEvent,
    MessageSegment,
    NetworkError,
    PrivateMessageEvent,
)
from nonebot.permission import SUPERUSER

from bot.presence.reactions import QQ_FACE
from core.messages import Attachment, Clip, Incoming
from core.sanitize import clean_name
from memory.journal import Route

log = logging.getLogger(__name__)
FRONT = "onebot"  # the journal files OneBot messages, and finds their replayer, under this name

_KINDS = {"image": "image", "record": "voice", "video": "video", "file": "file"}


def incoming(bot: Bot, event: MessageEvent) -> Incoming | None:
    """The plain Incoming for a group or private message (None for other message kinds)."""
    if not isinstance(event, GroupMessageEvent | PrivateMessageEvent):
        return None
    sender = event.sender
    # the group card, else the nickname, else the number: a name of invisible characters only is no name
    name = clean_name(sender.card or "") or clean_name(sender.nickname or "") or str(event.user_id)
    reply_to_bot = event.reply is not None and str(event.reply.sender.user_id) == str(bot.self_id)
    attachments = tuple(
        Attachment(_KINDS[seg.type], url=str(seg.data.get("url") or seg.data.get("file") or ""))
        for seg in event.message
        if seg.type in _KINDS
    )
    group = isinstance(event, GroupMessageEvent)
    return Incoming(
        platform="qq",
        channel_id=str(event.group_id) if isinstance(event, GroupMessageEvent) else "private",
        user_id=str(event.user_id),
        display_name=name,
        # only text segments: the adapter already removed the @bot and the quote
        text="".join(seg.data.get("text", "") for seg in event.message if seg.type == "text").strip(),
        message_id=str(event.message_id),
        is_direct=not group,
        mentions_bot=bool(event.to_me) and group and not reply_to_bot,
        reply_to_bot=reply_to_bot,
        reply_to=str(event.reply.message_id) if event.reply else "",
        is_self=str(event.user_id) == str(bot.self_id),
        attachments=attachments,
        bot_id=str(bot.self_id),
        sent_at=float(event.time or 0),
    )


def group_of(event: MessageEvent) -> str:
    """The group a message comes from ("" in a private chat), as [qq] groups lists it."""
    return str(event.group_id) if isinstance(event, GroupMessageEvent) else ""


async def is_admin(bot: Bot, event: MessageEvent, superusers: list[str]) -> bool:
    """May this user change group-level settings? Private chats: always (their own chat)."""
    if str(event.user_id) in superusers or await SUPERUSER(bot, event):
        return True
    if isinstance(event, GroupMessageEvent):
        return event.sender.role in ("owner", "admin")
    return True


def _head(event: MessageEvent, quoted: int | None) -> Message:
    """In groups: quote the trigger by `quoted` (its id on the sending account; None: no quote) and @ the sender."""
    if isinstance(event, GroupMessageEvent):
        return Message([*([MessageSegment.reply(quoted)] if quoted is not None else []), MessageSegment.at(event.user_id)])
    return Message()


async def answer(bot: Bot, event: MessageEvent, text: str) -> None:
    """A command answer: always a text segment, so nothing in it is read as a CQ code."""
    head = _head(event, event.message_id)
    await bot.send(event, head + MessageSegment.text((" " if head else "") + text))


async def answer_privately(bot: Bot, event: MessageEvent, text: str) -> bool:
    """A command answer as a private message to the asker; False when the implementation refused it.

    From a group, `group_id` asks for a temporary session with a member who is no friend of the
    bot's account (go-cqhttp's extension, which several implementations keep); one without it refuses.
    """
    params: dict[str, object] = {"user_id": event.user_id, "message": Message(MessageSegment.text(text))}
    if isinstance(event, GroupMessageEvent):
        params["group_id"] = event.group_id
    try:
        await bot.call_api("send_private_msg", **params)
    except (ActionFailed, NetworkError) as exc:  # a timeout may have sent it; saying it did not is the safe side
        log.info("private answer to %s not sent: %s", event.user_id, exc)
        return False
    return True


class OneBotWire:
    """OneBot v11 answering one message event: in a group the first message quotes and @s the sender."""

    forwards = True
    voices = True

    def __init__(self, bot: Bot, event: MessageEvent, quoted: Callable[[], int | None] | None = None):
        self.bot = bot
        self.event = event
        self.quotes = isinstance(event, GroupMessageEvent)
        self.sent_at: object = event.time
        self.quoted = quoted  # the message's id on this account, when another account received the event

    def _quote_id(self) -> int | None:
        return self.event.message_id if self.quoted is None else self.quoted()

    async def text(self, chunk: str, quote: bool) -> None:
        """A text segment (never read as a CQ code), after the quote and @ when `quote` in a group."""
        head = _head(self.event, self._quote_id()) if quote else Message()
        await self.bot.send(self.event, head + MessageSegment.text((" " if head else "") + chunk))

    async def forward(self, name: str, chunks: tuple[str, ...]) -> bool:
        """One merged-forward message into the group or private chat; False when refused."""
        if isinstance(self.event, GroupMessageEvent):
            return await forward(self.bot, name, chunks, group_id=self.event.group_id)
        return await forward(self.bot, name, chunks, user_id=self.event.user_id)

    async def clip(self, clip: Clip) -> None:
        """A record segment with base64 audio (the implementation turns it into QQ's silk)."""
        await self.bot.send(self.event, Message(MessageSegment.record(clip.data)))

    async def face(self, emoji: str) -> None:
        """A `face` segment quoting the message in groups (every OneBot v11 implementation shows it)."""
        mid = self._quote_id() if self.quotes else None
        head = Message(MessageSegment.reply(mid)) if mid is not None else Message()
        await self.bot.send(self.event, head + MessageSegment.face(QQ_FACE.get(emoji, 76)))


class OneBotGroup:
    """OneBot v11 posting into a group unprompted (the character speaking first): nothing to quote."""

    quotes = False
    forwards = True
    voices = False
    sent_at: object = None

    def __init__(self, bot: Bot, group_id: int):
        self.bot = bot
        self.group_id = group_id

    async def text(self, chunk: str, quote: bool) -> None:
        """A group message of one text segment."""
        await self.bot.send_group_msg(group_id=self.group_id, message=Message(MessageSegment.text(chunk)))

    async def forward(self, name: str, chunks: tuple[str, ...]) -> bool:
        """One merged-forward message into the group; False when refused."""
        return await forward(self.bot, name, chunks, group_id=self.group_id)

    async def clip(self, clip: Clip) -> None:
        """Text only when speaking first."""

    async def face(self, emoji: str) -> None:
        """Nothing to react to."""


async def forward(bot: Bot, name: str, chunks: tuple[str, ...], **target: int) -> bool:
    """One merged-forward message to `group_id` or `user_id`; False when the implementation cannot send one."""
    nodes = [MessageSegment.node_custom(int(bot.self_id), name, Message(MessageSegment.text(c))) for c in chunks]
    action = "send_group_forward_msg" if "group_id" in target else "send_private_forward_msg"
    try:
        await bot.call_api(action, **target, messages=nodes)
    except ActionFailed as exc:
        log.warning("merged-forward refused (%s); sending separate messages", exc)
        return False
    return True


def onebot_route(bot: Bot, event: MessageEvent) -> Route:
    """The ids a reply to this OneBot message event needs."""
    ids = {
        "self_id": str(bot.self_id),
        "message_type": str(event.message_type),
        "user_id": str(event.user_id),
        "message_id": str(event.message_id),
        "time": str(event.time),
    }
    group = getattr(event, "group_id", None)
    if group is not None:
        ids["group_id"] = str(group)
    return Route(FRONT, ids)
