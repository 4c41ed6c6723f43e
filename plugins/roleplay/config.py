"""The plugin's own nonebot config (only what nonebot must know; the rest is config.toml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class Config(BaseModel):
    """Read with `get_plugin_config`: ROLEPLAY_CONFIG, ROLEPLAY_PRIORITY in nonebot's .env."""

    roleplay_config: Path | None = None
    roleplay_priority: int = Field(50, ge=2)
