"""One command table: every platform has every command, with the same checks and the same words."""

from __future__ import annotations

from typing import Any

import pytest

from bot.commands.handlers import Commands
from bot.commands.table import NOT_ALLOWED, NOT_FOR_OTHERS, TABLE, Access, find, help_text, invoke
from core.messages import Incoming
from tests.support.openai_server import FakeOpenAI

HEADS = sorted({c.name.split()[0] for c in TABLE})


def group(text: str = "", uid: str = "u1") -> Incoming:
    return Incoming("test", "g1", uid, "小明", text)


def test_every_command_has_help_and_a_usage_line() -> None:
    assert len({c.name for c in TABLE}) == len(TABLE)
    for command in TABLE:
        assert command.help and len(command.help) <= 100  # Discord's limit for descriptions
        assert command.usage.startswith(f"/{command.name}")
        assert command.usage in help_text()


@pytest.mark.parametrize(("line", "name", "args"), [
    ("persona", "persona list", []),
    ("persona list", "persona list", []),
    ("persona set yexiu", "persona set", ["yexiu"]),
    ("persona yexiu", "persona set", ["yexiu"]),  # the terminal's short form
    ("Forget 2", "forget", ["2"]),
    ("lore 花果山 水帘洞", "lore", ["花果山", "水帘洞"]),
])
def test_typed_lines_find_their_command(line: str, name: str, args: list[str]) -> None:
    found = find(line.split())
    assert found is not None and found[0].name == name and found[1] == args


def test_unknown_lines_find_nothing() -> None:
    assert find([]) is None and find(["nonsense"]) is None


async def test_checks_and_rights_are_the_table_s(make_settings: Any, app_factory: Any, llm: FakeOpenAI) -> None:
    app = await app_factory(make_settings(llm={"base_url": llm.base_url, "model": "m"}))
    commands = Commands(app)
    member, admin = Access(admin=False), Access(admin=True, over_others=True)
    spoiler = next(c for c in TABLE if c.name == "spoiler")
    assert (await invoke(commands, group(), spoiler, ["12"], member)).text == NOT_ALLOWED
    bad = await invoke(commands, group(), spoiler, ["三"], admin)
    assert not bad.ok and bad.text.startswith("Usage: /spoiler N")  # arguments are checked before rights
    assert (await invoke(commands, group(), spoiler, ["12"], admin)).text == "Spoiler limit: chapter 12."
    assert (await app.conversations.settings(group().conversation)).max_chapter == 12
    lore = next(c for c in TABLE if c.name == "lore")
    assert (await invoke(commands, group(), lore, [], member)).text == "Usage: /lore QUERY"
    forget = next(c for c in TABLE if c.name == "forget")
    assert (await invoke(commands, group(), forget, ["all"], Access(admin=True), target="u2")).text == NOT_FOR_OTHERS
    mine = await invoke(commands, group(), forget, ["all"], member, target="u1")  # naming yourself is fine
    assert mine.ok
    stats = next(c for c in TABLE if c.name == "stats")
    assert (await invoke(commands, group(), stats, ["extra"], member)).text.startswith("Usage: /stats")
