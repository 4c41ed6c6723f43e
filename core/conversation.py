"""One conversation, named once: a group channel, or a user's direct chat, on one platform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Platform = Literal["terminal", "discord", "qq", "web", "test"]
Scope = Literal["group", "dm"]


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a message was said: every store, lock, gate map and setting is keyed by it."""

    platform: Platform
    scope: Scope
    id: str

    @classmethod
    def of(cls, platform: Platform, channel_id: str, user_id: str, is_direct: bool) -> Conversation:
        """The channel in groups, the user in direct chats (each QQ private chat is its own)."""
        return cls(platform, "dm", user_id) if is_direct else cls(platform, "group", channel_id)

    @property
    def place(self) -> str:
        """The conversation within its platform: "group:<id>" or "dm:<id>" (a group and a user can share a number)."""
        return f"{self.scope}:{self.id}"

    @property
    def key(self) -> str:
        """The one string key: "<platform>:<scope>:<id>"."""
        return f"{self.platform}:{self.scope}:{self.id}"

    def __str__(self) -> str:
        return self.key
