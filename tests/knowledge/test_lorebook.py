"""Lorebook: World Info triggering, logic modes, constants, case, regex, budget and order."""

from __future__ import annotations

from typing import Any

import pytest

from memory.knowledge.lorebook import key_matches, scan, triggered
from persona.card import LoreEntry


def entry(**kw: Any) -> LoreEntry:
    kw.setdefault("content", "some lore")
    return LoreEntry(**kw)


def test_primary_key_triggers_from_the_query_and_recent_messages() -> None:
    e = entry(keys=["金箍棒"], content="定海神针")
    assert scan([e], "你的金箍棒呢", [], 4, 100)[0].text == "定海神针"
    assert scan([e], "然后呢", ["说说金箍棒"], 4, 100)
    assert not scan([e], "然后呢", ["说说金箍棒", "a", "b", "c", "d"], 4, 100)  # beyond scan depth
    assert not scan([e], "今天天气", [], 4, 100)


@pytest.mark.parametrize(
    ("logic", "text", "expected"),
    [
        ("and_any", "八戒 吃 西瓜", True),
        ("and_any", "八戒 睡觉", False),
        ("and_all", "八戒 吃 西瓜", True),
        ("and_all", "八戒 西瓜", False),
        ("not_any", "八戒 睡觉", True),
        ("not_any", "八戒 西瓜", False),
        ("not_all", "八戒 西瓜", True),
        ("not_all", "八戒 吃 西瓜", False),
    ],
)
def test_secondary_key_logic(logic: str, text: str, expected: bool) -> None:
    e = entry(keys=["八戒"], secondary_keys=["吃", "西瓜"], selective=True, selective_logic=logic)
    assert triggered(e, text) is expected


def test_secondary_keys_ignored_unless_selective() -> None:
    e = entry(keys=["八戒"], secondary_keys=["西瓜"], selective=False)
    assert triggered(e, "八戒睡觉")


def test_constant_and_disabled() -> None:
    assert triggered(entry(keys=[], constant=True), "anything")
    assert not triggered(entry(keys=["八戒"], enabled=False), "八戒")
    assert not triggered(entry(keys=["八戒"], constant=True, enabled=False), "八戒")


def test_case_sensitivity_and_whole_words() -> None:
    assert key_matches("Wukong", "tell me about wukong", case_sensitive=False)
    assert not key_matches("Wukong", "tell me about wukong", case_sensitive=True)
    assert not key_matches("cat", "concatenate", case_sensitive=False)  # Latin keys match whole words
    assert key_matches("大圣", "齐天大圣来了", case_sensitive=False)  # CJK keys match inside runs


def test_regex_keys() -> None:
    assert key_matches(r"/第[一二三]回/", "第二回讲了什么", False)
    assert not key_matches(r"/第[一二三]回/", "第九回讲了什么", False)
    assert key_matches(r"/horo/i", "HORO!", True)
    assert not key_matches(r"/horo/", "HORO!", True)
    assert not key_matches(r"/([unclosed/", "([unclosed", False)  # a broken regex never matches


def test_budget_keeps_constants_then_priority_and_orders_by_insertion() -> None:
    entries = [
        entry(keys=["a"], content="低" * 30, priority=1, insertion_order=1),
        entry(keys=["a"], content="高" * 30, priority=50, insertion_order=30),
        entry(constant=True, content="常" * 30, priority=0, insertion_order=20),
        entry(keys=["a"], content="前" * 10, priority=5, insertion_order=99, position="before_char"),
    ]
    got = [p.text[0] for p in scan(entries, "a", [], 4, 80)]
    assert got == ["前", "常", "高"]  # 76 of 80 tokens used: the low-priority 32 does not fit
    got = [p.text[0] for p in scan(entries, "a", [], 4, 1000)]
    assert got == ["前", "低", "常", "高"]  # before_char first, then by insertion_order
    assert all(p.kind == "lore" for p in scan(entries, "a", [], 4, 1000))


def test_card_lorebook_of_a_shipped_persona(tmp_path: Any) -> None:
    from persona.library import PersonaLibrary
    from tests.conftest import ROOT

    wukong = PersonaLibrary([ROOT / "persona"]).get("wukong")
    found = scan(wukong.card.lorebook, "你的金箍棒有多重？", [], 4, 400)
    assert any("一万三千五百斤" in p.text for p in found)
