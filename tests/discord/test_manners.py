"""Discord: every admin slash command's permission, argument ranges, pictures and names at the edge."""

from __future__ import annotations

from typing import Any

import pytest

from bot.commands.handlers import MAX_CHAPTER
from bot.pipeline.exchange import ChannelSettings
from core.messages import Incoming
from memory.turns import SessionKey
from tests.discord.fake_discord import ALICE, APP_ID, BOT_USER, CHANNEL_ID, DM_ID, MANAGE_GUILD, FakeDiscord
from tests.support.openai_server import FakeOpenAI, Script

EPHEMERAL = 64
MENTION = f"<@{BOT_USER['id']}>"


def option(name: str, value: Any, kind: int = 3) -> dict[str, Any]:
    return {"name": name, "type": kind, "value": value}


# every command that changes a conversation, with the options it is sent and what that stores
ADMIN = [
    ("persona", [{"name": "set", "type": 1, "options": [option("persona", "yexiu")]}], "persona", "yexiu"),
    ("voice", [option("state", "on")], "voice", True),
    ("spoiler", [option("chapter", 12, 4)], "max_chapter", 12),
    ("chance", [option("percent", 30, 4)], "chance", 0.3),
    ("bots", [option("state", "on")], "bots", True),
]


async def settings_of(app: Any, channel: int = CHANNEL_ID, direct: bool = False) -> ChannelSettings:
    here = Incoming("discord", str(channel), str(ALICE), "alice", "", is_direct=direct)
    return await app.conversations.settings(here.conversation)  # type: ignore[no-any-return]


async def run(fake: FakeDiscord, name: str, options: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """Send one interaction; the body of the bot's callback."""
    data = fake.interaction(name, options, **kw)
    await fake.dispatch("INTERACTION_CREATE", data)
    sent = await fake.wait_for(lambda: fake.sent("POST", f"/interactions/{data['id']}/"))
    return sent[0].body  # type: ignore[no-any-return]


@pytest.mark.parametrize(("name", "options", "field", "value"), ADMIN)
async def test_admin_commands_need_manage_server_in_a_server_but_not_in_a_dm(
    connect: Any, discord_server: FakeDiscord, name: str, options: list[dict[str, Any]], field: str, value: Any
) -> None:
    app, _ = await connect()
    refused = await run(discord_server, name, options)
    assert refused["data"]["flags"] == EPHEMERAL and "Manage Server" in refused["data"]["content"]
    assert getattr(await settings_of(app), field) in (None, "")
    allowed = await run(discord_server, name, options, permissions=MANAGE_GUILD)
    assert "Manage Server" not in allowed["data"]["content"]
    assert getattr(await settings_of(app), field) == value
    in_dm = await run(discord_server, name, options, guild=False)
    assert "Manage Server" not in in_dm["data"]["content"]
    assert getattr(await settings_of(app, DM_ID, direct=True), field) == value


async def test_reset_needs_manage_server_and_keeps_the_conversation_when_refused(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    app, _ = await connect()
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("今天天气不错"))
    key = SessionKey("horo", "discord", "group", str(CHANNEL_ID))
    await discord_server.wait_for_async(lambda: app.store.recent(key, 10))
    refused = await run(discord_server, "reset", [])
    assert "Manage Server" in refused["data"]["content"] and len(await app.store.recent(key, 10)) == 1
    await run(discord_server, "reset", [], permissions=MANAGE_GUILD)
    assert await app.store.recent(key, 10) == []


async def test_number_options_are_registered_with_their_ranges(connect: Any, discord_server: FakeDiscord) -> None:
    await connect()
    synced = {c["name"]: c for c in discord_server.sent("PUT", f"/applications/{APP_ID}/commands")[0].body}  # type: ignore[union-attr]
    chapter = synced["spoiler"]["options"][0]
    percent = synced["chance"]["options"][0]
    assert (chapter["min_value"], chapter["max_value"]) == (0, MAX_CHAPTER)
    assert (percent["min_value"], percent["max_value"]) == (0, 100)


async def test_persona_ids_are_cleaned_before_they_are_echoed(connect: Any, discord_server: FakeDiscord) -> None:
    app, _ = await connect()
    options = [{"name": "set", "type": 1, "options": [option("persona", "\u202enobody\x1b")]}]
    body = await run(discord_server, "persona", options, permissions=MANAGE_GUILD)
    assert body["data"]["content"] == "No persona 'nobody'; choose one of: horo, wukong, yexiu"
    assert (await settings_of(app)).persona == ""


async def test_a_picture_alone_gets_a_line_without_the_model(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    app, _ = await connect()
    picture = {"id": "1", "filename": "a.png", "size": 10, "url": "https://cdn/a.png", "proxy_url": "https://cdn/a.png",
               "content_type": "image/png"}
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(MENTION, mentions=[BOT_USER], attachments=[picture]))
    sent = await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
    assert sent[0].body["content"] in app.personas.get("horo").card.lines.no_pictures
    assert llm.requests == []


async def test_hidden_characters_in_names_and_text_never_reach_the_model(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text="咱在。"), Script(text="咱也在。"))
    await connect()
    author = {"id": str(ALICE), "username": "alice", "global_name": "Ev\u202eil\u2066", "discriminator": "0",
              "avatar": None, "bot": False}
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫\u200b萝\u034f你在吗\x07", author=author))
    await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
    users = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert users[-1] == "Evil: 赫萝你在吗"
    blank = dict(author, global_name="\u3164\u200b")  # a name of invisible characters only
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫萝？", author=blank))
    await discord_server.wait_for(lambda: len(discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages")) == 2)
    users = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert users[-1] == "alice: 赫萝？"
