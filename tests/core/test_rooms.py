"""bot/ has rooms: a few modules at its top level, every other one in a folder named for its concern, each
folder a row of README's rooms table."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = ROOT / "README.md"


def test_bot_keeps_at_most_eight_top_level_modules() -> None:
    top = sorted(p.name for p in (ROOT / "bot").glob("*.py"))
    assert len(top) <= 8, f"bot/ has {len(top)} top-level modules ({', '.join(top)}): put the new ones in a room"


def test_every_room_is_a_row_of_the_readme_table() -> None:
    listed = set(re.findall(r"^\| `bot/(\w+)/` \|", README.read_text(encoding="utf-8"), re.M))
    rooms = {p.parent.name for p in (ROOT / "bot").glob("*/__init__.py")}
    assert listed == rooms, f"README's rooms table lacks {sorted(rooms - listed)} or names gone {sorted(listed - rooms)}"


def test_the_tests_the_table_names_exist() -> None:
    table = README.read_text(encoding="utf-8").split("| room | what lives there | its tests |")[1].split("\n\n")[0]
    named = re.findall(r"`(tests/[\w/.]+)`", table)
    assert named and not [n for n in named if not (ROOT / n).exists()]
