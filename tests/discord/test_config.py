"""[discord] settings: token from the environment only, shard ids checked against the count."""

from __future__ import annotations

from typing import Any

import pytest

from core.config import ConfigError, load_config


def test_token_comes_from_the_environment_and_stays_secret(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_settings().source
    assert not load_config(path).discord.configured
    monkeypatch.setenv("BOT_DISCORD__TOKEN", "abc.def")
    cfg = load_config(path).discord
    assert cfg.configured and cfg.token.get_secret_value() == "abc.def" and "abc.def" not in repr(cfg)


def test_shard_ids_must_fit_the_shard_count(make_settings: Any) -> None:
    assert make_settings(discord={"shard_count": 4, "shard_ids": [2, 3]}).discord.shard_ids == [2, 3]
    with pytest.raises(ConfigError, match="shard_ids"):
        make_settings(discord={"shard_count": 2, "shard_ids": [2]})
    with pytest.raises(ConfigError, match="shard_ids"):
        make_settings(discord={"shard_ids": [0]})
