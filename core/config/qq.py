"""[qq]: the QQ front-end (nonebot2: OneBot v11 and the official API)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from core.config.core import Section


class QQConfig(Section):
    """[qq]: OneBot v11 (reverse WebSocket) and the official QQ bot API."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    access_token: SecretStr = SecretStr("")
    superusers: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    official_app_id: str = ""
    official_secret: SecretStr = SecretStr("")
    official_sandbox: bool = False
    reply_delay_max: float = Field(0.0, ge=0.0)
    message_chars: int = Field(500, ge=50)
    forward_over_chars: int = Field(600, ge=0)
    voice_wait_seconds: float = Field(120.0, gt=0.0)
    accounts: dict[str, str] = Field(default_factory=dict)  # OneBot self id -> the persona that account plays

    @field_validator("groups", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        """Group numbers may be written as numbers or strings; they are compared as text."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("accounts", mode="before")
    @classmethod
    def _accounts(cls, value: object) -> object:
        """Self ids are QQ numbers (written as keys, numbers or text); each plays one persona id."""
        if not isinstance(value, dict):
            return value
        out: dict[str, object] = {}
        for key, persona in value.items():
            number = str(key).strip()
            if not number.isdigit():
                raise ValueError(f"{key!r} is not a QQ number (the account's self id)")
            if not isinstance(persona, str) or not persona.strip():
                raise ValueError(f"{key}: the persona must be a persona id, not {persona!r}")
            out[number] = persona.strip()
        if len(set(out.values())) < len(out):
            raise ValueError("two accounts play the same persona; give each account its own")
        return out

    def persona_of(self, self_id: str) -> str:
        """The persona an account plays ("" for an account not listed: the default persona)."""
        return self.accounts.get(self_id, "")

    def answers_group(self, group: str) -> bool:
        """Is this group (number, official group openid or guild id) served? An empty list serves all."""
        return not self.groups or group in self.groups

    @property
    def configured(self) -> bool:
        """True when QQ is switched on."""
        return self.enabled

    @property
    def official(self) -> bool:
        """True when the official QQ bot API has credentials."""
        return bool(self.official_app_id and self.official_secret.get_secret_value())
