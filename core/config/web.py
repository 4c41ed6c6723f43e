"""[web]: the web page (chat and console) in the bot's own process."""

from __future__ import annotations

from pydantic import Field, SecretStr

from core.config.core import Section


class WebConfig(Section):
    """[web]: a chat page and an operator console over HTTP, behind a token."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    token: SecretStr = SecretStr("")  # BOT_WEB__TOKEN (environment or .env only); empty: a random one per start
