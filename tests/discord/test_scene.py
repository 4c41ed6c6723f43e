"""Discord scenes: /scene add|remove|list (managers only, kept in the channel settings) and each
character speaking through the channel's webhook under its own name and avatar."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.discord.fake_discord import ALICE, CHANNEL_ID, MANAGE_GUILD, FakeDiscord, user
from tests.discord.test_slash import run, stored, sub
from tests.support.openai_server import FakeOpenAI, Script

EPHEMERAL = 64
HORO_AVATAR = "https://pictures.example/horo.png"


@pytest.fixture
def cards(tmp_path: Path) -> dict[str, Any]:
    """The shipped cards, Horo's with an avatar URL."""
    folder = tmp_path / "persona"
    shutil.copytree(ROOT / "persona", folder, ignore=shutil.ignore_patterns("knowledge", "*.db"))
    card = folder / "horo" / "card.toml"
    card.write_text(f'avatar = "{HORO_AVATAR}"\n' + card.read_text(encoding="utf-8"), encoding="utf-8")
    return {"dirs": [str(folder)]}


def by_persona(body: dict[str, Any]) -> str:
    return "horo" if "约伊兹" in body["messages"][0]["content"] else "yexiu"


def hook_posts(fake: FakeDiscord) -> list[Any]:
    return [r for r in fake.sent("POST", "/webhooks/") if "wtoken" in r.path]


async def test_scene_commands_are_for_managers_and_kept_in_the_channel_settings(
    connect: Any, discord_server: FakeDiscord, make_settings: Any, app_factory: Any
) -> None:
    app, _ = await connect()
    for name, options in (("add", {"persona": "yexiu"}), ("remove", {"persona": "horo"}), ("list", {})):
        refused = await run(discord_server, "scene", sub(name, **options))
        assert refused["data"]["flags"] == EPHEMERAL and "Manage Server" in refused["data"]["content"], name
    assert (await stored(app)).scene == ()
    added = await run(discord_server, "scene", sub("add", persona="yexiu"), permissions=MANAGE_GUILD)
    assert "赫萝 (horo), 叶修 (yexiu)" in added["data"]["content"] and "Manage Webhooks" in added["data"]["content"]
    assert (await stored(app)).scene == ("horo", "yexiu")  # the channel's character, then the one added
    unknown = await run(discord_server, "scene", sub("add", persona="nobody"), permissions=MANAGE_GUILD)
    assert "No persona" in unknown["data"]["content"] and (await stored(app)).scene == ("horo", "yexiu")
    listed = await run(discord_server, "scene", sub("list"), permissions=MANAGE_GUILD)
    assert listed["data"]["flags"] == EPHEMERAL and "Scene here: 赫萝 (horo), 叶修 (yexiu)." in listed["data"]["content"]
    in_dm = await run(discord_server, "scene", sub("add", persona="wukong"), guild=False)
    assert "server channel" in in_dm["data"]["content"]
    # read back by a new process on the same store
    again = await app_factory(make_settings(discord={"token": "x"}))
    assert (await stored(again)).scene == ("horo", "yexiu")
    ended = await run(discord_server, "scene", sub("remove", persona="horo"), permissions=MANAGE_GUILD)
    assert "叶修 (yexiu) speaks alone" in ended["data"]["content"]
    assert (await stored(app)).scene == () and (await stored(app)).persona == "yexiu"


async def test_two_characters_speak_through_one_webhook_under_their_own_names(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI, cards: dict[str, Any]
) -> None:
    await connect(personas=cards)
    await run(discord_server, "scene", sub("add", persona="yexiu"), permissions=MANAGE_GUILD)
    llm.responder = lambda body: Script(text={"horo": "咱要吃苹果。", "yexiu": "泡面就行。"}[by_persona(body)])
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫萝，叶修，晚饭吃什么？"))
    posts = await discord_server.wait_for(lambda: len(hook_posts(discord_server)) >= 2 and hook_posts(discord_server))
    assert [(p.body["username"], p.body["content"]) for p in posts] == [("赫萝", "咱要吃苹果。"), ("叶修", "泡面就行。")]
    assert posts[0].body["avatar_url"] == HORO_AVATAR and "avatar_url" not in posts[1].body
    assert len({p.path.split("/")[2] for p in posts}) == 1, "one webhook for the channel"
    assert len(discord_server.sent("POST", f"/channels/{CHANNEL_ID}/webhooks")) == 1
    assert not discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"), "nothing as the bot itself"
    assert [by_persona(b) for b in llm.requests] == ["horo", "yexiu"]
    assert any("赫萝: 咱要吃苹果。" in m["content"] for m in llm.requests[1]["messages"] if m["role"] == "user")
    # the webhook's own lines come back through the gateway: they start nothing
    wid = int(posts[1].path.split("/")[2])
    echo = discord_server.message("泡面就行。赫萝？", author=user(wid, "叶修", bot=True), webhook_id=wid)
    await discord_server.dispatch("MESSAGE_CREATE", echo)
    # a reply to Ye Xiu's line reaches him alone, though it names her
    llm.responder = lambda body: Script(text={"horo": "咱不说。", "yexiu": "行，听你的。"}[by_persona(body)])
    line = discord_server.messages[max(discord_server.messages)]
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫萝说得对", reply_to=line))
    third = await discord_server.wait_for(lambda: len(hook_posts(discord_server)) >= 3 and hook_posts(discord_server)[2])
    assert (third.body["username"], third.body["content"]) == ("叶修", "行，听你的。")
    assert len(llm.requests) == 3
    # /why and /memory answer as the character asked
    why = await run(discord_server, "why", [{"name": "character", "type": 3, "value": "yexiu"}])
    assert why["data"]["flags"] == EPHEMERAL and why["data"]["content"].startswith("The last reply of 叶修 (to alice")
    memory = await run(discord_server, "memory", [{"name": "character", "type": 3, "value": "赫萝"}])
    assert memory["data"]["content"].startswith("What 赫萝 remembers about alice")
    nobody = await run(discord_server, "why", [{"name": "character", "type": 3, "value": "nobody"}])
    assert nobody["data"]["content"].startswith("No character 'nobody'")


async def test_without_manage_webhooks_each_line_goes_as_the_bot_under_its_name(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    discord_server.permissions_ok = False
    await connect()
    await run(discord_server, "scene", sub("add", persona="yexiu"), permissions=MANAGE_GUILD)
    llm.responder = lambda body: Script(text={"horo": "咱在。", "yexiu": "在。"}[by_persona(body)])
    with caplog.at_level(logging.WARNING, logger="bot.discord_front.webhooks"):
        await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫萝和叶修在吗", author=user(ALICE, "alice")))
        sent = await discord_server.wait_for(
            lambda: len(discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages")) >= 2
            and discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
    assert [s.body["content"] for s in sent] == ["**赫萝**: 咱在。", "**叶修**: 在。"]
    assert not hook_posts(discord_server)
    assert any("Manage Webhooks" in r.getMessage() for r in caplog.records)
