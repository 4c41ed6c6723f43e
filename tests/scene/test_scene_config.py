"""Scene keys: [qq] accounts (file and environment), [scene] max_bot_turns, a card's talkativeness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from persona.importer import import_card
from persona.library import PersonaLibrary
from tests.core.test_personas import v2_card


def test_accounts_from_the_file_and_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[qq]\naccounts = {"10001" = "horo", 10002 = "yexiu"}\n', encoding="utf-8")
    settings = load_config(path, env_file=tmp_path / "none.env")
    assert settings.qq.accounts == {"10001": "horo", "10002": "yexiu"}
    assert settings.qq.persona_of("10002") == "yexiu" and settings.qq.persona_of("10003") == ""
    assert settings.scene.max_bot_turns == 3
    # the environment adds accounts to the file's, or gives one of them another persona
    monkeypatch.setenv("BOT_QQ__ACCOUNTS", json.dumps({"20001": "wukong", "10002": "yexiu2"}))
    monkeypatch.setenv("BOT_SCENE__MAX_BOT_TURNS", "5")
    settings = load_config(path, env_file=tmp_path / "none.env")
    assert settings.qq.accounts == {"10001": "horo", "10002": "yexiu2", "20001": "wukong"}
    assert settings.scene.max_bot_turns == 5


@pytest.mark.parametrize(("text", "names"), [
    ('[qq]\naccounts = {"bot-a" = "horo"}\n', "[qq] accounts"),
    ('[qq]\naccounts = {"1" = "horo", "2" = "horo"}\n', "[qq] accounts"),
    ("[scene]\nmax_bot_turns = 0\n", "[scene] max_bot_turns"),
    ("[scene]\nmax_turns = 2\n", "[scene] max_turns: unknown key"),
])
def test_a_wrong_scene_key_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, env_file=tmp_path / "none.env")


def test_accounts_in_the_environment_must_be_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_QQ__ACCOUNTS", "10001=horo")
    with pytest.raises(ConfigError, match="BOT_QQ__ACCOUNTS"):
        load_config(None, env_file=tmp_path / "none.env")


@pytest.mark.parametrize(("extensions", "expect"), [({}, 0.5), ({"talkativeness": "0.8"}, 0.8),
                                                    ({"talkativeness": 3}, 1.0), ({"talkativeness": "loud"}, 0.5)])
def test_an_imported_card_keeps_its_talkativeness(tmp_path: Path, extensions: dict[str, object], expect: float) -> None:
    card = v2_card()
    card["data"]["extensions"] = extensions
    src = tmp_path / "card.json"
    src.write_text(json.dumps(card), encoding="utf-8")
    import_card(src, tmp_path / "out")
    assert PersonaLibrary([tmp_path / "out"]).get("seraphina").card.talkativeness == pytest.approx(expect)
