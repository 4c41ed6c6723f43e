"""[discord]: the Discord front-end."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bot.config.core import Section


class DiscordConfig(Section):
    """[discord]: set BOT_DISCORD__TOKEN to enable."""

    token: SecretStr = SecretStr("")
    shard_count: int = Field(0, ge=0)
    shard_ids: list[int] = Field(default_factory=list)
    sync_guilds: list[int] = Field(default_factory=list)
    stream_edits: bool = False
    webhooks: bool = False

    @property
    def configured(self) -> bool:
        """True when a token is set."""
        return bool(self.token.get_secret_value())
