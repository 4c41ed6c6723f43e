"""Sections for the core: [bot], [llm], [memory], [personas]."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def is_local_host(host: str) -> bool:
    """Only this machine can reach a listener on `host` (a loopback address or localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:
        return False


def exposed_without_token(section: str, host: str, token: SecretStr, env: str, need: str) -> str:
    """Why a listener must not start ("" when it may): beyond this machine it needs a token of its own."""
    if token.get_secret_value() or is_local_host(host):
        return ""
    return f"[{section}] host {host!r} lets other machines connect, so {need}: set {env} (environment or .env)"


class Section(BaseModel):
    """Base for every config section: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class BotConfig(Section):
    """[bot]: process-wide settings."""

    default_persona: str = "horo"
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_input_chars: int = Field(1500, ge=50)
    rate_limit_per_minute: int = Field(12, ge=1)
    merge_bursts: bool = True
    reply_chance: float = Field(0.0, ge=0.0, le=1.0)
    reply_cooldown_seconds: float = Field(60.0, ge=0.0)
    answer_bots: bool = False
    bot_reply_limit: int = Field(3, ge=0)
    busy_notice_seconds: float = Field(20.0, ge=0.0)
    max_queue_seconds: float = Field(180.0, gt=0.0)
    drain_seconds: float = Field(20.0, ge=0.0)
    replay_minutes: float = Field(10.0, ge=0.0)


def auto_or_bool(value: object) -> object:
    """"auto", true or false (also as the strings an environment variable gives), with one clear error
    instead of pydantic's two union branches."""
    words = {"auto": "auto", "true": True, "false": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    if isinstance(value, bool):
        return value
    raise ValueError(f'must be "auto", true or false (got {value!r})')


class LLMConfig(Section):
    """[llm]: the OpenAI-compatible model server (lmdeploy api_server by default)."""

    provider: Literal["openai", "offline"] = "openai"
    server: Literal["auto", "lmdeploy", "vllm", "llamacpp", "openai"] = "auto"
    base_url: str = "http://127.0.0.1:23333/v1"
    model: str = ""
    api_key: SecretStr = SecretStr("")
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    repetition_penalty: float = Field(1.05, gt=0.0)
    steady_temperature: float = Field(0.3, ge=0.0, le=2.0)
    steady_repetition_penalty: float = Field(1.3, gt=0.0)
    script_grammar: bool = True
    max_tokens: int = Field(512, ge=1)
    context_tokens: int | Literal["auto"] = Field("auto", union_mode="left_to_right")
    example_tokens: int = Field(800, ge=0)
    request_timeout: float = Field(30.0, gt=0.0)
    deadline: float = Field(60.0, gt=0.0)
    first_token_timeout: float = Field(10.0, gt=0.0)
    max_concurrency: int = Field(4, ge=1)
    retry_after: float = Field(30.0, ge=0.0)
    vision: bool | Literal["auto"] = "auto"
    max_images: int = Field(2, ge=0)
    max_image_bytes: int = Field(5_000_000, ge=1024)
    image_tokens: int = Field(768, ge=0)
    inline_images: bool = False


    @field_validator("context_tokens")
    @classmethod
    def _context_size(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 512:
            raise ValueError("must be at least 512 (or \"auto\")")
        return value

    @field_validator("vision", mode="before")
    @classmethod
    def _vision(cls, value: object) -> object:
        return auto_or_bool(value)


class MemoryConfig(Section):
    """[memory]: conversation store, window, summary and user facts."""

    backend: Literal["auto", "redis", "sqlite"] = "auto"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_max_connections: int = Field(64, ge=1)
    redis_pool_timeout: float = Field(10.0, gt=0.0)
    retry_seconds: float = Field(5.0, ge=0.0)
    key_prefix: str = "rp"
    sqlite_path: Path = Path("memory.sqlite3")
    max_turns: int = Field(200, ge=10)
    ttl_days: float = Field(0.0, ge=0.0)
    archive_turns: int = Field(10_000, ge=0)
    archive_days: float = Field(0.0, ge=0.0)
    history_tokens: int = Field(1500, ge=100)
    group_context_turns: int = Field(12, ge=0)
    recall_tokens: int = Field(1200, ge=0)
    recall_dense: bool | Literal["auto"] = "auto"
    recall_dense_wait: float = Field(0.5, gt=0.0)
    summary: bool = True
    summary_tokens: int = Field(300, ge=50)
    facts_tokens: int = Field(300, ge=0)
    profile_tokens: int = Field(250, ge=0)
    memory_tokens: int = Field(1500, ge=100)
    facts: bool = True
    facts_per_user: int = Field(12, ge=0)
    facts_every: int = Field(6, ge=1)
    share_facts: bool = False
    background_after_reply: bool = True
    warm_after_reply: bool = True

    @field_validator("recall_dense", mode="before")
    @classmethod
    def _recall_dense(cls, value: object) -> object:
        return auto_or_bool(value)

    @field_validator("key_prefix")
    @classmethod
    def _namespace(cls, value: str) -> str:
        """The namespace without a shape version: an older "rp:v1" is read as "rp"."""
        value = re.sub(r":v[0-9]+$", "", value.strip())
        if not value:
            raise ValueError('must not be empty (e.g. "rp")')
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        """A URL redis-py can open; the message never repeats it (it may hold a password)."""
        url = urlparse(value.get_secret_value())
        if url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("not a Redis URL; write it like redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///path)")
        try:
            url.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("the port is not a number; write it like redis://127.0.0.1:6379/0") from None
        return value


class PersonasConfig(Section):
    """[personas]: where character cards live."""

    dirs: list[Path] = Field(default_factory=lambda: [Path("persona")])
    import_dir: Path = Path("data/personas")
