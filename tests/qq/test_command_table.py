"""QQ has a matcher for every command of the table."""

from __future__ import annotations

from typing import Any

from bot.commands.table import TABLE


def test_qq_has_a_matcher_for_every_command(roleplay_plugin: Any) -> None:
    import nonebot
    from nonebot.rule import CommandRule

    plugin = nonebot.get_plugin("roleplay")
    assert plugin is not None
    commands = set()
    for matcher in plugin.matcher:
        for checker in matcher.rule.checkers:
            if isinstance(checker.call, CommandRule):
                commands.update(cmd[0] for cmd in checker.call.cmds)
    assert commands == {c.name.split()[0] for c in TABLE}
