"""Configuration: config.toml parsed once into typed sections, overridable from the environment.

Precedence, highest first: environment (`BOT_<SECTION>__<KEY>`), `.env`, the TOML file, defaults.
Relative paths in the file are resolved against the file's folder.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel, PrivateAttr, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from core.config.core import BotConfig, LLMConfig, MemoryConfig, PersonasConfig
from core.config.discord import DiscordConfig
from core.config.fetch import FetchConfig
from core.config.initiative import InitiativeConfig
from core.config.knowledge import KnowledgeConfig
from core.config.metrics import MetricsConfig
from core.config.pacing import PacingConfig
from core.config.qq import QQConfig
from core.config.scene import SceneConfig
from core.config.training import TrainingConfig
from core.config.voice import VoiceConfig
from core.config.web import WebConfig

__all__ = [
    "BotConfig",
    "ConfigError",
    "DiscordConfig",
    "FetchConfig",
    "InitiativeConfig",
    "KnowledgeConfig",
    "LLMConfig",
    "MemoryConfig",
    "MetricsConfig",
    "PacingConfig",
    "PersonasConfig",
    "QQConfig",
    "SceneConfig",
    "Settings",
    "TrainingConfig",
    "VoiceConfig",
    "WebConfig",
    "load_config",
]

DEFAULT_PATH = Path("config.toml")


class ConfigError(Exception):
    """A config file or environment override that cannot be used; the message names the key."""


class Settings(BaseSettings):
    """The whole configuration; each component receives only its own section."""

    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    bot: BotConfig = BotConfig()
    llm: LLMConfig = LLMConfig()
    memory: MemoryConfig = MemoryConfig()
    personas: PersonasConfig = PersonasConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()
    voice: VoiceConfig = VoiceConfig()
    fetch: FetchConfig = FetchConfig()
    discord: DiscordConfig = DiscordConfig()
    qq: QQConfig = QQConfig()
    training: TrainingConfig = TrainingConfig()
    metrics: MetricsConfig = MetricsConfig()
    initiative: InitiativeConfig = InitiativeConfig()
    pacing: PacingConfig = PacingConfig()
    web: WebConfig = WebConfig()
    scene: SceneConfig = SceneConfig()

    _source: Path | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats .env beats the TOML file (passed as init data)."""
        return env_settings, _OwnKeys(settings_cls, dotenv_settings), init_settings

    @property
    def source(self) -> Path | None:
        """The config file these settings came from, if any."""
        return self._source

    def secrets(self) -> list[str]:
        """Every non-empty secret value, for log redaction."""
        found: list[str] = []
        for section in self.__class__.model_fields:
            part = getattr(self, section)
            for name in part.__class__.model_fields:
                value = getattr(part, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
        return found


class _OwnKeys(PydanticBaseSettingsSource):
    """A .env source that ignores other programs' keys (a nonebot project's DRIVER=...)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: __call__ returns the filtered data directly."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Keys of our sections, and BOT_-prefixed typos (which then fail with their name)."""
        fields = self.settings_cls.model_fields
        return {k: v for k, v in self.inner().items() if k in fields or k.lower().startswith("bot_")}


def load_config(path: Path | None = None, env_file: Path | None = None) -> Settings:
    """Read config.toml (or PATH), the environment and .env into Settings; raise ConfigError."""
    explicit = path is not None
    path = Path(path) if path is not None else DEFAULT_PATH
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"{path}: config file not found")
    if isinstance(data.get("web"), dict) and "token" in data["web"]:  # a file is easily shared; a token must not be
        raise ConfigError(f"{path}: [web] token: set BOT_WEB__TOKEN in the environment or .env, not in the file")
    env_file = env_file if env_file is not None else Path(".env")
    try:
        settings = Settings(_env_file=env_file if env_file.is_file() else None, **data)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path if path.is_file() else None)) from None
    except SettingsError as exc:  # a list or table written in the environment that is not JSON
        raise ConfigError(_not_json(exc, env_file)) from None
    root = path.resolve().parent if path.is_file() else Path.cwd()
    settings = _resolve_paths(settings, root)
    settings._source = path.resolve() if path.is_file() else None
    return settings


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per problem, naming the file, section and key (or the environment variable)."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        section, key = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("", loc[0] if loc else "")
        env_name = "BOT_" + "__".join(p.upper() for p in loc)
        where = f"environment {env_name}" if env_name in os.environ else str(path or "config")
        what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        if not section:
            lines.append(f"{where}: unknown section [{key}]" if err["type"] == "extra_forbidden" else f"{where}: {key}: {what}")
        else:
            lines.append(f"{where}: [{section}] {key}: {what}")
    return "\n".join(lines)


def _not_json(exc: SettingsError, env_file: Path) -> str:
    """The variable whose value had to be JSON (a list or a table) and is not, as one line."""
    found = re.search(r'field "(\w+)" from source "(\w+)"', str(exc))
    section, source = found.groups() if found else ("", "")
    dotenv = source.startswith("DotEnv")
    values = dotenv_values(env_file) if dotenv and env_file.is_file() else dict(os.environ)
    where = f"{env_file}:" if dotenv else "environment"
    model = Settings.model_fields[section].annotation if section in Settings.model_fields else None
    fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    prefix = f"BOT_{section.upper()}__"
    for name, raw in values.items():
        key = name.upper().removeprefix(prefix).lower()
        if not name.upper().startswith(prefix) or key not in fields or raw is None:
            continue
        kind = get_origin(fields[key].annotation)
        if kind not in (list, set, tuple, dict):
            continue
        try:
            json.loads(raw)
        except ValueError:
            example = '{"name": "value"}' if kind is dict else '["12345", "67890"]'
            return f"{where} {name}: [{section}] {key}: not valid JSON; write it like {example}"
    return f"{where} [{section}]: a value is not valid JSON ({exc}); write lists and tables as JSON"


def _resolve_paths(settings: Settings, root: Path) -> Settings:
    """Anchor relative paths at the config file's folder (and sqlite under data_dir)."""

    def anchor(p: Path, base: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    data_dir = anchor(settings.bot.data_dir, root)
    settings.bot = settings.bot.model_copy(update={"data_dir": data_dir})
    settings.memory = settings.memory.model_copy(
        update={"sqlite_path": anchor(settings.memory.sqlite_path, data_dir)}
    )
    settings.personas = settings.personas.model_copy(
        update={
            "dirs": [anchor(d, root) for d in settings.personas.dirs],
            "import_dir": anchor(settings.personas.import_dir, root),
        }
    )
    settings.fetch = settings.fetch.model_copy(update={"allow_dirs": [anchor(d, root) for d in settings.fetch.allow_dirs]})
    return settings
