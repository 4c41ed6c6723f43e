"""The plain data that crosses the edge: one Incoming from any platform, one Reply back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True, slots=True)
class Clip:
    """A synthesized voice clip."""

    data: bytes
    format: str
    duration: float
    text: str = ""


Mode = Literal["model", "offline", "fallback"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the character answers; the voice clip, if any, finishes after the text."""

    text: str
    persona_id: str
    persona_name: str
    mode: Mode
    reply_to: str = ""
    voice: asyncio.Task[Clip | None] | None = field(default=None, compare=False)
