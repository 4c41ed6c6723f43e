"""Slash commands through discord.py's command tree, each with its permission check."""

from __future__ import annotations

from typing import Any

from bot.commands.table import TABLE
from bot.pipeline.exchange import ChannelSettings
from core.messages import Incoming
from tests.discord.fake_discord import ALICE, APP_ID, CHANNEL_ID, GUILD_ID, MANAGE_GUILD, FakeDiscord
from tests.support.openai_server import FakeOpenAI

EPHEMERAL = 64


async def stored(app: Any) -> ChannelSettings:
    """The channel's settings as the pipeline reads them."""
    here = Incoming("discord", str(CHANNEL_ID), str(ALICE), "alice", "")
    return await app.conversations.settings(here.conversation)  # type: ignore[no-any-return]


async def run(fake: FakeDiscord, name: str, options: list[dict[str, Any]] = (), **kw: Any) -> dict[str, Any]:  # type: ignore[assignment]
    """Send one interaction; the body of the bot's callback."""
    data = fake.interaction(name, list(options), **kw)
    await fake.dispatch("INTERACTION_CREATE", data)
    sent = await fake.wait_for(lambda: fake.sent("POST", f"/interactions/{data['id']}/"))
    return sent[0].body  # type: ignore[no-any-return]


def sub(name: str, **values: Any) -> list[dict[str, Any]]:
    return [{"name": name, "type": 1, "options": [{"name": k, "type": 3, "value": v} for k, v in values.items()]}]


async def test_commands_are_synced_globally_or_to_the_configured_guilds(connect: Any, discord_server: FakeDiscord) -> None:
    await connect()
    synced = discord_server.sent("PUT", f"/applications/{APP_ID}/commands")
    assert {c["name"] for c in synced[0].body} == {c.name.split()[0] for c in TABLE}  # type: ignore[union-attr]
    persona = next(c for c in synced[0].body if c["name"] == "persona")  # type: ignore[union-attr]
    assert {o["name"] for o in persona["options"]} == {"list", "set"}
    assert all(len(c["description"]) <= 100 for c in synced[0].body)  # type: ignore[union-attr]
    discord_server.requests.clear()
    await connect(discord={"sync_guilds": [GUILD_ID]})
    assert discord_server.sent("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")


async def test_persona_set_needs_manage_server(connect: Any, discord_server: FakeDiscord) -> None:
    app, _ = await connect()
    refused = await run(discord_server, "persona", sub("set", persona="yexiu"))
    assert refused["data"]["flags"] == EPHEMERAL and "Manage Server" in refused["data"]["content"]
    assert (await stored(app)).persona == ""
    done = await run(discord_server, "persona", sub("set", persona="yexiu"), permissions=MANAGE_GUILD)
    assert done["type"] == 4 and done["data"].get("flags", 0) == 0
    assert done["data"]["allowed_mentions"]["parse"] == []
    assert (await stored(app)).persona == "yexiu"


async def test_persona_list_is_open_to_everyone(connect: Any, discord_server: FakeDiscord) -> None:
    await connect()
    body = await run(discord_server, "persona", sub("list"))
    assert "horo" in body["data"]["content"] and "yexiu" in body["data"]["content"]


async def test_reset_needs_an_admin_in_servers_but_not_in_dms(connect: Any, discord_server: FakeDiscord) -> None:
    await connect()
    refused = await run(discord_server, "reset")
    assert "Manage Server" in refused["data"]["content"]
    allowed = await run(discord_server, "reset", permissions=MANAGE_GUILD)
    assert "forgot" in allowed["data"]["content"]
    in_dm = await run(discord_server, "reset", guild=False)
    assert "forgot" in in_dm["data"]["content"]


async def test_spoiler_needs_manage_server(connect: Any, discord_server: FakeDiscord) -> None:
    app, _ = await connect()
    option = [{"name": "chapter", "type": 4, "value": 12}]
    refused = await run(discord_server, "spoiler", option)
    assert "Manage Server" in refused["data"]["content"]
    assert (await stored(app)).max_chapter is None
    await run(discord_server, "spoiler", option, permissions=MANAGE_GUILD)
    assert (await stored(app)).max_chapter == 12


async def test_voice_switch_needs_manage_server_and_persists(connect: Any, discord_server: FakeDiscord) -> None:
    app, _ = await connect()
    refused = await run(discord_server, "voice", [{"name": "state", "type": 3, "value": "on"}])
    assert "Manage Server" in refused["data"]["content"] and (await stored(app)).voice is None
    body = await run(discord_server, "voice", [{"name": "state", "type": 3, "value": "on"}], permissions=MANAGE_GUILD)
    assert body["data"]["content"] == "Voice on."
    assert (await stored(app)).voice is True


async def test_lore_and_stats_are_only_for_the_asker(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    await connect()
    deferred = await run(discord_server, "lore", [{"name": "query", "type": 3, "value": "苹果"}])
    assert deferred["type"] == 5 and deferred["data"]["flags"] == EPHEMERAL
    follow = await discord_server.wait_for(lambda: discord_server.sent("POST", f"/webhooks/{APP_ID}/"))
    assert follow[0].body["flags"] == EPHEMERAL and follow[0].body["content"] == "Nothing found."
    assert follow[0].body["allowed_mentions"]["parse"] == []
    stats = await run(discord_server, "stats")
    assert stats["data"]["flags"] == EPHEMERAL and "persona: horo" in stats["data"]["content"]
    assert str(ALICE) not in stats["data"]["content"]


async def test_chance_and_bots_need_manage_server_and_reach_the_gate(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    app, _ = await connect()
    refused = await run(discord_server, "chance", [{"name": "percent", "type": 4, "value": 100}])
    assert "Manage Server" in refused["data"]["content"]
    await run(discord_server, "chance", [{"name": "percent", "type": 4, "value": 100}], permissions=MANAGE_GUILD)
    await run(discord_server, "bots", [{"name": "state", "type": 3, "value": "on"}], permissions=MANAGE_GUILD)
    settings = await stored(app)
    assert settings.chance == 1.0 and settings.bots is True
    # with chance 100% an unaddressed message is answered
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("随便聊聊"))
    await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
