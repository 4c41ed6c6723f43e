"""Spoiler limits cover the lorebook: entries of later chapters neither fire nor show in /lore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.commands.handlers import Commands
from core.messages import Incoming
from memory.knowledge.chapters import split_chapters
from memory.knowledge.lorebook import scan
from persona.card import LoreEntry
from persona.importer import import_card
from persona.library import PersonaError, PersonaLibrary
from tests.conftest import ROOT, MakeSettings
from tests.knowledge.conftest import XIYOUJI
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import system_text

HERE = Incoming("test", "g1", "u1", "小明", "")


def test_entries_past_the_limit_do_not_fire() -> None:
    early = LoreEntry(keys=["弼马温"], content="看马的官", chapter=4)
    late = LoreEntry(keys=["弼马温"], content="五行山下五百年", chapter=7)
    always = LoreEntry(keys=["弼马温"], content="没有章节的条目")
    fired = lambda limit: [p.text for p in scan([early, late, always], "弼马温是什么", [], 4, 500, limit)]  # noqa: E731
    assert fired(None) == ["看马的官", "五行山下五百年", "没有章节的条目"]
    assert fired(3) == ["没有章节的条目"]
    assert fired(4) == ["看马的官", "没有章节的条目"]
    assert fired(7) == ["看马的官", "五行山下五百年", "没有章节的条目"]
    constant = LoreEntry(constant=True, content="始终都在的后期设定", chapter=50)
    assert scan([constant], "随便", [], 4, 500, 10) == []  # constant entries obey the limit too


async def test_lore_command_and_the_prompt_keep_to_the_channel_limit(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app: App = await app_factory(make_settings(
        llm={"base_url": llm.base_url, "model": "m", "retry_after": 0},
        bot={"default_persona": "wukong"},
        knowledge={"enabled": True, "mode": "bm25"},
    ))
    commands = Commands(app)
    await commands.spoiler(HERE, 3)
    assert (await commands.lore(HERE, "弼马温")).text == "Nothing found."
    llm.default = Script(text="嗯")
    await app.chain.handle(Incoming("test", "g1", "u1", "小明", "大圣，弼马温是什么官？", mentions_bot=True))
    system = system_text(llm.requests[-1])
    assert "看马的弼马温" not in system and "输了被压在五行山下" not in system  # the lore; the card itself is not limited
    await commands.spoiler(HERE, 7)
    await app.chain.handle(Incoming("test", "g1", "u1", "小明", "大圣，弼马温是什么官？", mentions_bot=True))
    assert "看马的弼马温" in system_text(llm.requests[-1])

    await commands.spoiler(HERE, 4)
    shown = (await commands.lore(HERE, "弼马温")).text
    assert "看马的弼马温" in shown and "五行山" not in shown  # chapter 4, not the havoc of chapters 5-7
    await commands.spoiler(HERE, None)
    shown = (await commands.lore(HERE, "弼马温 五行山")).text
    assert "看马的弼马温" in shown and "输了被压在五行山下" in shown


def _card(entry: dict[str, Any]) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "data": {"name": "Reader", "character_book": {"entries": [entry]}}}


@pytest.mark.parametrize(
    ("entry", "chapter"),
    [
        ({"keys": ["a"], "content": "x", "chapter": 5}, 5),
        ({"keys": ["a"], "content": "x", "extensions": {"chapter": "12"}}, 12),
        ({"keys": ["a"], "content": "x"}, None),
    ],
)
def test_imported_entries_carry_their_chapter(tmp_path: Path, entry: dict[str, Any], chapter: int | None) -> None:
    src = tmp_path / "card.json"
    src.write_text(json.dumps(_card(entry)), encoding="utf-8")
    target = import_card(src, tmp_path / "out")
    assert PersonaLibrary([tmp_path / "out"]).get("reader").card.lorebook[0].chapter == chapter
    assert ("chapter = " in target.read_text(encoding="utf-8")) == (chapter is not None)


@pytest.mark.parametrize("bad", [0, -1, "three", 2.5, True, "99999999999999999999"])
def test_a_bad_chapter_is_refused_with_one_line(tmp_path: Path, bad: Any) -> None:
    src = tmp_path / "card.json"
    src.write_text(json.dumps(_card({"keys": ["a"], "content": "x", "extensions": {"chapter": bad}})), encoding="utf-8")
    with pytest.raises(PersonaError, match=r"entries\[0\]: chapter must be") as err:
        import_card(src, tmp_path / "out")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_wukong_lore_is_tagged_no_earlier_than_the_novel_tells_it() -> None:
    chapters = split_chapters(XIYOUJI.read_text(encoding="utf-8"))
    lore = PersonaLibrary([ROOT / "persona"]).get("wukong").card.lorebook
    assert lore and all(entry.chapter for entry in lore)
    for entry in lore:
        first = min(n for n, ch in enumerate(chapters, 1) if any(k in ch.text for k in entry.keys if not k.isascii()))
        assert first <= entry.chapter, (entry.comment, first, entry.chapter)  # type: ignore[operator]
    tags = {entry.comment: entry.chapter for entry in lore}
    assert tags["The Keeper of the Heavenly Horses"] == 4
    assert tags["Havoc in Heaven and the Five Elements Mountain"] == 7
