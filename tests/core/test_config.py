"""Config: typed sections, errors that name the key and file, environment and .env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from tests.conftest import ROOT, MakeSettings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_loads_with_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = load_config(ROOT / "config.toml")
    assert settings.llm.base_url == "http://127.0.0.1:23333/v1"
    assert settings.bot.data_dir == ROOT / "data"
    assert settings.memory.sqlite_path == ROOT / "data" / "memory.sqlite3"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm]\nbas_url = "http://x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: [llm] bas_url: unknown key"


def test_unknown_section_and_bad_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section \[lmm\]"):
        load_config(write(tmp_path, "[lmm]\nx = 1\n"))
    with pytest.raises(ConfigError, match=r"\[llm\] temperature: .*less than or equal to 2"):
        load_config(write(tmp_path, "[llm]\ntemperature = 5\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[llm\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_environment_beats_dotenv_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, '[llm]\nmodel = "from-file"\ntemperature = 0.5\n[memory]\nmax_turns = 50\n')
    (tmp_path / ".env").write_text("BOT_LLM__MODEL=from-dotenv\nBOT_MEMORY__MAX_TURNS=60\n", encoding="utf-8")
    monkeypatch.setenv("BOT_LLM__MODEL", "from-env")
    s = load_config(path)
    assert s.llm.model == "from-env"
    assert s.memory.max_turns == 60
    assert s.llm.temperature == 0.5  # untouched keys of an overridden section stay


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_LLM__MAX_TOKENS", "lots")
    with pytest.raises(ConfigError, match=r"environment BOT_LLM__MAX_TOKENS: \[llm\] max_tokens"):
        load_config(write(tmp_path, ""))


def test_secrets_are_collected_for_redaction(make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_DISCORD__TOKEN", "discord-token-123")
    monkeypatch.setenv("BOT_LLM__API_KEY", "sk-secret-456")
    s = make_settings()
    assert {"discord-token-123", "sk-secret-456"} <= set(s.secrets())
    assert "discord-token-123" not in repr(s)


def test_dotenv_keys_of_other_programs_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DRIVER=~fastapi\nONEBOT_ACCESS_TOKEN=x\nBOT_LLM__MODEL=m1\n", encoding="utf-8")
    assert load_config(write(tmp_path, "")).llm.model == "m1"
    (tmp_path / ".env").write_text("BOT_LLM__MODLE=m1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[llm\] modle: unknown key"):
        load_config(write(tmp_path, ""))


def test_malformed_redis_url_is_one_line_naming_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[memory]\nredis_url = "redis//x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}: [memory] redis_url: not a Redis URL; "
        "write it like redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///path)"
    )
    monkeypatch.setenv("BOT_MEMORY__REDIS_URL", "redis://:secret@host:port/0")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""))
    assert str(err.value).startswith("environment BOT_MEMORY__REDIS_URL: [memory] redis_url: the port is not a number")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


def test_non_json_list_in_the_environment_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_QQ__HOST", "0.0.0.0")  # a plain string beside it is not blamed
    monkeypatch.setenv("BOT_QQ__SUPERUSERS", "12345,67890")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""))
    assert str(err.value) == (
        'environment BOT_QQ__SUPERUSERS: [qq] superusers: not valid JSON; write it like ["12345", "67890"]'
    )
    monkeypatch.delenv("BOT_QQ__SUPERUSERS")
    (tmp_path / ".env").write_text("BOT_QQ__SUPERUSERS=[12345\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^\.env: BOT_QQ__SUPERUSERS: \[qq\] superusers: not valid JSON"):
        load_config(write(tmp_path, ""))
    (tmp_path / ".env").write_text('BOT_QQ__SUPERUSERS=["12345"]\n', encoding="utf-8")
    assert load_config(write(tmp_path, "")).qq.superusers == ["12345"]


def test_store_pool_and_retry_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = load_config(write(tmp_path, "")).memory
    assert (memory.redis_max_connections, memory.redis_pool_timeout, memory.retry_seconds) == (64, 10.0, 5.0)
    monkeypatch.setenv("BOT_MEMORY__REDIS_MAX_CONNECTIONS", "8")
    path = write(tmp_path, "[memory]\nredis_pool_timeout = 2.5\nretry_seconds = 0\n")
    memory = load_config(path).memory
    assert (memory.redis_max_connections, memory.redis_pool_timeout, memory.retry_seconds) == (8, 2.5, 0.0)
    monkeypatch.delenv("BOT_MEMORY__REDIS_MAX_CONNECTIONS")
    with pytest.raises(ConfigError, match=r"\[memory\] redis_max_connections: .*greater than or equal to 1"):
        load_config(write(tmp_path, "[memory]\nredis_max_connections = 0\n"))


def test_initiative_times_and_zone_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[initiative\] greetings: .*HH:MM.*'8:30'"):
        load_config(write(tmp_path, '[initiative]\ngreetings = ["8:30"]\n'))
    with pytest.raises(ConfigError, match=r"\[initiative\] timezone: .*unknown time zone 'Mars/Olympus'"):
        load_config(write(tmp_path, '[initiative]\ntimezone = "Mars/Olympus"\n'))
    ok = load_config(write(tmp_path, '[initiative]\ngreetings = ["08:30", "22:00"]\ntimezone = "Asia/Shanghai"\n'))
    assert ok.initiative.greetings == ["08:30", "22:00"]
