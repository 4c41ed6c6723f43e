"""[discord]: the Discord front-end."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from core.config.core import Section


class DiscordConfig(Section):
    """[discord]: set BOT_DISCORD__TOKEN to enable."""

    token: SecretStr = SecretStr("")
    shard_count: int = Field(0, ge=0)
    shard_ids: list[int] = Field(default_factory=list)
    sync_guilds: list[int] = Field(default_factory=list)
    guilds: list[int] = Field(default_factory=list)
    stream_edits: bool = False
    webhooks: bool = False

    @model_validator(mode="after")
    def _shards_fit(self) -> DiscordConfig:
        """shard_ids name shards of shard_count (0 ≤ id < shard_count)."""
        wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
        if wrong:
            raise ValueError(f"shard_ids {wrong} must each be below shard_count ({self.shard_count})")
        return self

    def answers_guild(self, guild_id: int | None) -> bool:
        """Is this server served? Direct messages (no guild) always are; an empty list serves all."""
        return guild_id is None or not self.guilds or guild_id in self.guilds

    @property
    def configured(self) -> bool:
        """True when a token is set."""
        return bool(self.token.get_secret_value())
