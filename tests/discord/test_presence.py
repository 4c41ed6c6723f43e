"""Presence on Discord through the real discord.py client: reactions to short acks, speaking first."""

from __future__ import annotations

from typing import Any

from bot.app import Clocks
from memory.turns import SessionKey
from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, MANAGE_GUILD, FakeDiscord
from tests.discord.test_slash import run
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_short_ack_gets_a_reaction_and_no_message(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    app, _ = await connect(initiative={"react_chance": 1.0})
    ack = discord_server.message(f"{MENTION} 哈哈哈哈", mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", ack)
    reacted = await discord_server.wait_for(lambda: discord_server.sent("PUT", "/reactions/"))
    assert reacted[0].path.endswith(f"/channels/{CHANNEL_ID}/messages/{ack['id']}/reactions/😄/@me")
    assert discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages") == [] and llm.requests == []
    turns = await app.store.recent(SessionKey("horo", "discord", "group", str(CHANNEL_ID)), 10)
    assert [(t.text, t.addressed) for t in turns] == [("哈哈哈哈", False)]


async def test_speaking_first_needs_manage_server_and_posts_into_the_quiet_channel(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    wall = Wall()
    app, _ = await connect(clocks=Clocks(wall=wall), initiative={"quiet_minutes": 10})
    option = [{"name": "state", "type": 3, "value": "on"}]
    refused = await run(discord_server, "initiative", option)
    assert "Manage Server" in refused["data"]["content"]
    done = await run(discord_server, "initiative", option, permissions=MANAGE_GUILD)
    assert done["data"]["content"].startswith("Speaking first: on")
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("the rain never stops here"))
    await discord_server.wait_for(lambda: app.initiative.watched)
    wall.now += 11 * 60
    llm.push(Script(text="Rain again? Good weather for staying in."))
    assert [c.id for c in await app.initiative.tick()] == [str(CHANNEL_ID)]
    posted = discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages")
    assert [p.body["content"] for p in posted] == ["Rain again? Good weather for staying in."]
    assert "message_reference" not in posted[0].body and posted[0].body["allowed_mentions"]["parse"] == []
    wall.now += 11 * 60
    assert await app.initiative.tick() == []  # not twice in a row
