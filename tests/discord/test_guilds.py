"""[discord] guilds: only listed servers are heard; direct messages always are."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.discord_front.slash import NOT_SERVED
from memory.turns import SessionKey
from tests.discord.fake_discord import ALICE, BOT_USER, CHANNEL_ID, DM_ID, GUILD_ID, MANAGE_GUILD, FakeDiscord, user
from tests.discord.test_slash import EPHEMERAL, run, stored, sub
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"


def replies(fake: FakeDiscord, channel: int) -> list[Any]:
    return fake.sent("POST", f"/channels/{channel}/messages")


async def test_an_unlisted_server_is_not_heard_but_direct_messages_are(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text="汝好。"))
    app, _ = await connect(discord={"guilds": [GUILD_ID + 1]})
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} 你好", mentions=[BOT_USER]))
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("路过", author=user(ALICE + 5, "bob")))
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("hello", channel_id=DM_ID, guild=False))
    sent = await discord_server.wait_for(lambda: replies(discord_server, DM_ID))
    assert sent[0].body["content"] == "汝好。"
    await asyncio.sleep(0.5)  # time enough for the server's message to have been answered, were it heard
    assert replies(discord_server, CHANNEL_ID) == [] and len(llm.requests) == 1
    assert not discord_server.sent("POST", f"/channels/{CHANNEL_ID}/typing")
    assert await app.store.recent(SessionKey("horo", "discord", "group", str(CHANNEL_ID)), 10) == []

    # a manager's command there does nothing and says so only to its caller
    body = await run(discord_server, "persona", sub("set", persona="yexiu"), permissions=MANAGE_GUILD)
    assert body["data"]["content"] == NOT_SERVED and body["data"]["flags"] == EPHEMERAL
    assert (await stored(app)).persona == ""


async def test_a_listed_server_is_heard(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="咱在。"))
    await connect(discord={"guilds": [GUILD_ID]})
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} 你好", mentions=[BOT_USER]))
    sent = await discord_server.wait_for(lambda: replies(discord_server, CHANNEL_ID))
    assert sent[0].body["content"] == "咱在。"
