"""Turn-taking in a scene: who a message calls on, in what order, and when the characters stop."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.scene.once import Once
from bot.scene.policy import Floor, Line, Member, draw_one, named
from persona.library import PersonaLibrary
from tests.conftest import ROOT

HORO = Member("horo", ("赫萝", "贤狼", "Holo"), 0.5)
YEXIU = Member("yexiu", ("叶修", "老叶", "Ye Xiu"), 0.5)
WUKONG = Member("wukong", ("孙悟空", "大圣"), 0.5)
CAST = [HORO, YEXIU, WUKONG]


def run(floor: Floor, lines: dict[str, list[str]]) -> list[str]:
    """Let the floor run; each character says its scripted lines in turn (then "嗯。")."""
    spoken: list[str] = []
    while who := floor.next():
        text = lines.get(who, []).pop(0) if lines.get(who) else "嗯。"
        floor.said(who, text)
        spoken.append(who)
    return spoken


def test_an_at_or_reply_gives_that_character_the_floor_alone() -> None:
    floor = Floor(CAST, 3, Line("叶修你也说两句，赫萝呢？", to="horo"))
    assert run(floor, {}) == ["horo"]


def test_named_characters_speak_in_order_of_mention_each_once() -> None:
    floor = Floor(CAST, 3, Line("大圣和老叶，还有 Holo，你们好"))
    assert run(floor, {}) == ["wukong", "yexiu", "horo"]
    assert named("Holographic 叶修", CAST) == ["yexiu"]  # a Latin name counts as a whole word only


def test_no_more_than_max_turns_lines_follow_one_message() -> None:
    floor = Floor(CAST, 2, Line("赫萝、叶修、大圣都来"))
    assert run(floor, {}) == ["horo", "yexiu"]


def test_characters_may_call_on_each_other_within_the_bound_and_never_follow_themselves() -> None:
    floor = Floor(CAST, 3, Line("赫萝你好"))
    lines = {"horo": ["叶修，你来说。", "叶修又来了"], "yexiu": ["赫萝说得对，赫萝。", "赫萝！"]}
    assert run(floor, lines) == ["horo", "yexiu", "horo"]
    floor = Floor(CAST, 5, Line("赫萝你好"))
    assert run(floor, {"horo": ["我自己说：赫萝。"]}) == ["horo"]  # naming itself calls no one


def test_a_line_by_a_character_never_calls_that_character() -> None:
    floor = Floor(CAST, 3, Line("赫萝和叶修都在", by="horo"))
    assert run(floor, {}) == ["yexiu"]


def test_unaddressed_message_draws_one_by_talkativeness_under_the_chance() -> None:
    assert Floor(CAST, 3, Line("今天天气不错")).next() == ""  # no draw offered: nobody
    assert Floor(CAST, 3, Line("今天天气不错"), chance=0.0, draw=lambda: 0.0).next() == ""
    quiet = [Member("a", ("甲",), 0.0), Member("b", ("乙",), 1.0)]
    values = itertools.cycle([0.1, 0.0])  # under the chance, then the lowest point: still never "a"
    assert Floor(quiet, 3, Line("hi"), chance=0.5, draw=lambda: next(values)).next() == "b"
    assert Floor(quiet, 3, Line("hi"), chance=0.5, draw=lambda: 0.6).next() == ""  # over the chance
    assert draw_one([Member("a", ("甲",), 0.0)], 1.0, lambda: 0.0) == ""


def test_draws_follow_talkativeness() -> None:
    import random

    rng = random.Random(7)
    cast = [Member("a", ("甲",), 0.9), Member("b", ("乙",), 0.1)]
    picks = [draw_one(cast, 1.0, rng.random) for _ in range(2000)]
    assert 0.85 < picks.count("a") / len(picks) < 0.95


def test_members_come_from_cards_with_their_talkativeness(tmp_path: Path) -> None:
    lib = PersonaLibrary([ROOT / "persona"])
    horo = Member.of(lib.get("horo"))
    assert horo.id == "horo" and "贤狼" in horo.names and horo.talkativeness == pytest.approx(0.5)


def test_once_remembers_a_key_for_its_ttl_and_stays_bounded() -> None:
    now = [0.0]
    once = Once(10.0, clock=lambda: now[0], cap=3)
    assert once.first("qq:g1:5") and not once.first("qq:g1:5")
    now[0] = 10.5
    assert once.first("qq:g1:5")  # expired: a new message with a reused id is handled
    for key in ("a", "b", "c", "d"):
        assert once.first(key)
    assert len(once) <= 3
