"""The plain data that crosses the edge: one Incoming from any platform, one Reply back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from core.conversation import Conversation, Platform
from core.sanitize import clean_name, clean_text

__all__ = ["Attachment", "Clip", "Conversation", "Incoming", "Mode", "Platform", "Reply", "said_at"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a user sent (image, audio, ...); only described, never fetched by the core."""

    kind: str
    url: str = ""
    name: str = ""
    mime: str = ""  # as the platform declares it (checked again by the bytes before a model sees it)
    size: int = 0


@dataclass(frozen=True, slots=True)
class Incoming:
    """One platform message, already converted by an adapter."""

    platform: Platform
    channel_id: str
    user_id: str
    display_name: str
    text: str
    message_id: str = ""
    is_direct: bool = False
    mentions_bot: bool = False
    reply_to_bot: bool = False
    reply_to: str = ""
    author_is_bot: bool = False
    is_self: bool = False
    attachments: tuple[Attachment, ...] = ()
    persona: str = ""
    bot_id: str = ""  # the bot account that received it (QQ self_id, Discord user id)
    sent_at: float = 0.0  # when the platform says it was sent (epoch seconds; 0: unknown)
    # "remark" or "greeting": no one wrote this; it asks the character to speak first (never stored)
    unprompted: str = ""
    # in a scene: the persona id of the character who said this line, handed to the next character to
    # answer (its user_id is that character's, "scene:<id>"); "" for what people say
    speaker: str = ""
    # where it was said; adapters may name it, else the channel in groups and the user in direct chats
    conversation: Conversation = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        """Clean what users wrote at the edge, so no front can forget: text and display name."""
        object.__setattr__(self, "text", clean_text(self.text))
        object.__setattr__(self, "display_name", clean_name(self.display_name))
        if self.conversation is None:
            where = Conversation.of(self.platform, self.channel_id, self.user_id, self.is_direct)
            object.__setattr__(self, "conversation", where)


def said_at(msg: Incoming, now: float) -> float:
    """When the message was said: the platform's time, unless unknown or ahead of `now` (then `now`)."""
    return msg.sent_at if 0 < msg.sent_at <= now + 60 else now


@dataclass(frozen=True, slots=True)
class Clip:
    """A synthesized voice clip."""

    data: bytes
    format: str
    duration: float
    text: str = ""


# canned: a short line of the character's chosen without the model (a rate-limit notice, "I can't
# see pictures"); the chain posts it at once. reaction: the text is one emoji that the platform shows
# as a reaction to the message (Discord) or a face (QQ), not as a reply.
Mode = Literal["model", "offline", "fallback", "canned", "reaction"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the character answers; the voice clip, if any, finishes after the text."""

    text: str
    persona_id: str
    persona_name: str
    mode: Mode
    reply_to: str = ""
    voice: asyncio.Task[Clip | None] | None = field(default=None, compare=False)
