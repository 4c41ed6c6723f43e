"""discord.Message -> Incoming: who spoke, where, whether to the character, in plain text."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

import discord

from core.messages import Attachment, Incoming
from core.sanitize import clean_name
from persona.library import PersonaLibrary

log = logging.getLogger(__name__)

MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")


async def referenced(message: discord.Message) -> discord.Message | None:
    """The message this one replies to: resolved by the gateway, cached, or fetched once."""
    ref = message.reference
    if ref is None or ref.message_id is None:
        return None
    if isinstance(ref.resolved, discord.Message):
        return ref.resolved
    if isinstance(ref.cached_message, discord.Message):
        return ref.cached_message
    try:
        return await message.channel.fetch_message(ref.message_id)
    except discord.HTTPException as exc:  # deleted or not visible: the reply just isn't to us
        log.debug("reply target %s not readable: %s", ref.message_id, exc)
        return None


def plain_text(message: discord.Message, me_id: int, persona_name: str) -> str:
    """The content with mentions made readable: a leading @bot dropped, later ones the persona's name.

    A bare @bot leaves nothing: the guard stage turns a call without words into one the model reads.
    """
    users = {u.id: u.display_name for u in message.mentions}
    roles = {r.id: r.name for r in message.role_mentions}
    channels = {c.id: getattr(c, "name", "channel") for c in message.channel_mentions}
    content = re.sub(rf"^\s*<@!?{me_id}>[\s,:，：]*", "", message.content)

    def readable(m: re.Match[str]) -> str:
        kind, ident = m.group(1), int(m.group(2))
        if kind in ("@", "@!"):
            return persona_name if ident == me_id else "@" + users.get(ident, "someone")
        if kind == "@&":
            return "@" + roles.get(ident, "role")
        return "#" + channels.get(ident, "channel")

    return MENTION.sub(readable, content).strip()


def attachments_of(message: discord.Message) -> tuple[Attachment, ...]:
    """Each attachment described by kind (image, audio, voice, video, file), URL and name."""
    voice = message.flags.voice
    out = []
    for a in message.attachments:
        major = (a.content_type or "").split("/")[0]
        kind = "voice" if voice and major == "audio" else major if major in ("image", "audio", "video") else "file"
        out.append(Attachment(kind, a.url, a.filename, a.content_type or "", a.size))
    return tuple(out)


async def to_incoming(
    message: discord.Message,
    me: discord.abc.User,
    persona_name: str,
    personas: PersonaLibrary | None = None,
    own_webhooks: Collection[int] = (),
) -> Incoming:
    """One Incoming for the pipeline; `personas` given (webhook mode) lets a named character answer."""
    own = message.author.id == me.id or (message.webhook_id is not None and message.webhook_id in own_webhooks)
    target = await referenced(message)
    reply_to_bot = target is not None and (
        target.author.id == me.id or (target.webhook_id is not None and target.webhook_id in own_webhooks)
    )
    text = plain_text(message, me.id, persona_name)
    persona = ""
    if personas is not None:
        named = personas.find_by_name(text)
        if named is None and reply_to_bot and target is not None and target.webhook_id is not None:
            # a reply to a character's webhook message goes to that character
            named = personas.find_by_name(target.author.name)
        persona = named.id if named else ""
    return Incoming(
        platform="discord",
        channel_id=str(message.channel.id),
        user_id=str(message.author.id),
        # a name of invisible characters only falls back to the account name
        display_name=clean_name(message.author.display_name) or message.author.name,
        text=text,
        message_id=str(message.id),
        sent_at=message.created_at.timestamp(),  # its snowflake's time: memory dates the turn by it
        is_direct=message.guild is None,
        mentions_bot=any(u.id == me.id for u in message.mentions),
        reply_to_bot=reply_to_bot,
        reply_to=str(message.reference.message_id) if message.reference and message.reference.message_id else "",
        author_is_bot=message.author.bot or message.webhook_id is not None,
        is_self=own,
        attachments=attachments_of(message),
        persona=persona,
        bot_id=str(me.id),
    )
