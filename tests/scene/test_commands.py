"""`/scene` outside Discord: a QQ group's scene is its accounts, and other places have none."""

from __future__ import annotations

from typing import Any

from bot.commands.handlers import Commands
from bot.commands.table import Access, find, invoke
from bot.scene.commands import ELSEWHERE, ON_QQ
from core.messages import Incoming
from tests.conftest import MakeSettings


async def test_scene_commands_say_where_scenes_come_from(make_settings: MakeSettings, app_factory: Any) -> None:
    app = await app_factory(make_settings(llm={"provider": "offline"}))
    commands, admin = Commands(app), Access(admin=True)
    for platform, said in (("qq", ON_QQ), ("terminal", ELSEWHERE)):
        msg = Incoming(platform, "g1", "u1", "阿青", "")
        found = find(["scene", "add", "yexiu"])
        assert found is not None
        answer = await invoke(commands, msg, found[0], found[1], admin)
        assert (answer.text, answer.ok) == (said, False)
        assert (await app.conversations.settings(msg.conversation)).scene == ()
