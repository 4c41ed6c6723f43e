"""The real CLI in a subprocess: chat, run, doctor, persona."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.cli import run_bot
from tests.support.openai_server import FakeOpenAI, Script

cli = run_bot


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(
        f'[personas]\ndirs = ["{ROOT / "persona"}"]\n[memory]\nbackend = "sqlite"\n[knowledge]\nenabled = false\n',
        encoding="utf-8",
    )
    return tmp_path


def test_scripted_chat_replies_line_by_line_and_remembers(workdir: Path, llm: FakeOpenAI) -> None:
    env = {"BOT_LLM__BASE_URL": llm.base_url}
    llm.push(Script(text="汝好。\n咱是赫萝。"), Script(text="记得"), Script(text="还记得"))
    first = cli(["chat", "--session", "s1"], workdir, "你好\n我叫小明\n", env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["汝好。 咱是赫萝。", "记得"]
    again = cli(["chat", "--session", "s1"], workdir, "我叫什么\n", env)
    assert again.stdout.splitlines() == ["还记得"]
    prompt = [m["content"] for m in llm.requests[-1]["messages"]]
    assert "我叫小明" in prompt and "记得" in prompt
    assert (workdir / "data" / "memory.sqlite3").exists()


def test_run_without_platforms_chats_offline_and_says_what_to_configure(workdir: Path) -> None:
    env = {"BOT_LLM__BASE_URL": "http://127.0.0.1:9/v1"}
    out = cli(["run"], workdir, "你是谁？\n", env)
    assert out.returncode == 0, out.stderr
    assert "贤狼" in out.stdout
    assert "No platform is configured" in out.stderr
    assert "BOT_DISCORD__TOKEN" in out.stderr and "lmdeploy serve api_server" in out.stderr
    assert "nothing answers at http://127.0.0.1:9/v1" in out.stderr


def test_chat_with_another_persona(workdir: Path) -> None:
    out = cli(["chat", "--persona", "wukong"], workdir, "你是谁\n", {"BOT_LLM__PROVIDER": "offline"})
    assert "孙悟空" in out.stdout or "俺" in out.stdout
    bad = cli(["chat", "--persona", "nobody"], workdir, "hi\n", {"BOT_LLM__PROVIDER": "offline"})
    assert bad.returncode == 2 and bad.stderr.strip() == "error: no persona 'nobody' (known: horo, wukong, yexiu)"


def test_doctor_reports_and_hides_secrets(workdir: Path, llm: FakeOpenAI) -> None:
    env = {"BOT_LLM__BASE_URL": llm.base_url, "BOT_LLM__API_KEY": "sk-very-secret", "BOT_DISCORD__TOKEN": "tok-very-secret",
           "BOT_LOG_LEVEL": "DEBUG"}
    ok = cli(["doctor"], workdir, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "test-model" in ok.stdout and "sqlite" in ok.stdout
    assert "very-secret" not in ok.stdout + ok.stderr
    down = cli(["doctor"], workdir, env={"BOT_LLM__BASE_URL": "http://127.0.0.1:9/v1"})
    assert down.returncode == 1
    assert any(line.startswith("model") and "FAIL" in line for line in down.stdout.splitlines())


def test_config_error_is_one_line(workdir: Path) -> None:
    (workdir / "bad.toml").write_text("[memory]\nbackend = \"mongo\"\n", encoding="utf-8")
    out = cli(["doctor", "--config", str(workdir / "bad.toml")], workdir)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "[memory] backend" in out.stderr and "Traceback" not in out.stderr


def test_persona_commands(workdir: Path) -> None:
    listed = cli(["persona", "list"], workdir)
    assert listed.stdout.splitlines() == ["horo\t赫萝", "wukong\t孙悟空", "yexiu\t叶修"]
    shown = cli(["persona", "show", "yexiu"], workdir)
    assert 'name = "叶修"' in shown.stdout
    card = workdir / "c.json"
    card.write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": "Test Girl", "first_mes": "hey"}}), encoding="utf-8")
    imported = cli(["persona", "import", str(card)], workdir)
    assert imported.returncode == 0 and imported.stdout.startswith("imported test-girl")
    assert "test-girl\tTest Girl" in cli(["persona", "list"], workdir).stdout
    dup = cli(["persona", "import", str(card)], workdir)
    assert dup.returncode == 2 and "exists" in dup.stderr
    card.write_text("{broken", encoding="utf-8")
    broken = cli(["persona", "import", str(card), "--id", "other"], workdir)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr and broken.stderr.count("\n") == 1
    assert not (workdir / "data" / "personas" / "other").exists()
