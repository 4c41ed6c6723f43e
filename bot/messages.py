"""The plain data that crosses the edge: one Incoming from any platform, one Reply back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from bot.sanitize import clean_name, clean_text

Platform = Literal["terminal", "discord", "qq", "test"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a user sent (image, audio, ...); only described, never fetched by the core."""

    kind: str
    url: str = ""
    name: str = ""


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

    def __post_init__(self) -> None:
        """Clean what users wrote at the edge, so no front can forget: text and display name."""
        object.__setattr__(self, "text", clean_text(self.text))
        object.__setattr__(self, "display_name", clean_name(self.display_name))


@dataclass(frozen=True, slots=True)
class Clip:
    """A synthesized voice clip."""

    data: bytes
    format: str
    duration: float
    text: str = ""


# canned: a short line of the character's chosen without the model (a rate-limit notice, "I can't
# see pictures"); the chain posts it at once
Mode = Literal["model", "offline", "fallback", "canned"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the character answers; the voice clip, if any, finishes after the text."""

    text: str
    persona_id: str
    persona_name: str
    mode: Mode
    reply_to: str = ""
    voice: asyncio.Task[Clip | None] | None = field(default=None, compare=False)
