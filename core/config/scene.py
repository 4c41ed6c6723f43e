"""[scene]: several characters in one channel, and how long they may talk among themselves."""

from __future__ import annotations

from pydantic import Field

from core.config.core import Section


class SceneConfig(Section):
    """[scene]: turn-taking limits shared by every scene (QQ accounts, Discord `/scene`)."""

    max_bot_turns: int = Field(3, ge=1, le=20)
    dedup_seconds: float = Field(600.0, ge=1.0)
