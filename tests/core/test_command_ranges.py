"""Command arguments are range-checked in one place, for every front and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.commands.handlers import MAX_CHAPTER, BadArgument, Commands, chapter_arg, percent_arg, switch_arg
from core.conversation import Conversation
from core.messages import Incoming
from tests.conftest import MakeSettings
from tests.support.cli import run_bot

HERE = Incoming("test", "g1", "u1", "Alice", "")


@pytest.mark.parametrize(
    ("text", "chapter"),
    [("12", 12), (" 7 ", 7), ("３", 3), ("off", None), ("OFF", None), ("none", None), ("0", None), (str(MAX_CHAPTER), MAX_CHAPTER)],
)
def test_chapters_as_people_write_them(text: str, chapter: int | None) -> None:
    assert chapter_arg(text) == chapter


@pytest.mark.parametrize("text", ["99999999999999999999", str(MAX_CHAPTER + 1), "-1", "1e3", "三", "٣", "", "12 13", "\ud83d"])
def test_chapters_out_of_range_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(BadArgument, match="Usage: /spoiler N"):
        chapter_arg(text)


def test_percent_and_switch_arguments() -> None:
    assert [percent_arg(t) for t in ("0", "30", "30%", "１００")] == [0, 30, 30, 100]
    for bad in ("101", "-5", "0.5", "half", ""):
        with pytest.raises(BadArgument, match="Usage: /chance"):
            percent_arg(bad)
    assert switch_arg(" ON ", "voice") is True and switch_arg("off\u200b", "bots") is False
    with pytest.raises(BadArgument, match=r"Usage: /bots on\|off"):
        switch_arg("yes", "bots")


async def test_out_of_range_values_never_reach_the_store(make_settings: MakeSettings, app_factory: Any) -> None:
    app: App = await app_factory(make_settings(llm={"provider": "offline"}))
    commands = Commands(app)
    for answer in (await commands.spoiler(HERE, MAX_CHAPTER + 1), await commands.spoiler(HERE, -4),
                   await commands.chance(HERE, 101), await commands.chance(HERE, -1)):
        assert not answer.ok and "\n" not in answer.text
    assert await app.store.settings(Conversation("test", "group", "g1")) == {}
    long = await commands.lore(HERE, "苹果" * 5000 + "\x1b")
    assert long.ok and long.text == "Nothing found."
    assert not (await commands.lore(HERE, "\u200b \x00")).ok


def test_eval_cut_offs_are_range_checked_by_the_cli(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[memory]\nbackend = "sqlite"\n', encoding="utf-8")
    for k in ("0", "99999999999999999999", "5,1001"):
        run = run_bot(["eval", "retrieval", "--corpus", "c.jsonl", "--queries", "q.jsonl", "--k", k], tmp_path)
        assert run.returncode == 2 and run.stderr.strip() == f"error: --k values must be from 1 to 1000 (got {k})"
