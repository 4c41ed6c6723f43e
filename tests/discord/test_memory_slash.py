"""/memory, /forget and /why as Discord slash commands: answers only the asker sees, admin checks."""

from __future__ import annotations

from typing import Any

from memory.turns import Fact, FactBook
from tests.discord.fake_discord import ALICE, CHANNEL_ID, MANAGE_GUILD, FakeDiscord, user
from tests.support.openai_server import FakeOpenAI, Script

EPHEMERAL = 64
BOB = 900_000_000_000_000_200


async def run(fake: FakeDiscord, name: str, options: list[dict[str, Any]] = (), *, about: int = 0, **kw: Any) -> dict[str, Any]:  # type: ignore[assignment]
    """Send one interaction (with `about` as the resolved user option); the body of the bot's callback."""
    data = fake.interaction(name, list(options), **kw)
    if about:
        data["data"]["resolved"] = {"users": {str(about): user(about, "bob")}}
    await fake.dispatch("INTERACTION_CREATE", data)
    sent = await fake.wait_for(lambda: fake.sent("POST", f"/interactions/{data['id']}/"))
    return sent[0].body  # type: ignore[no-any-return]


async def plant(app: Any, uid: int, *texts: str) -> None:
    facts = tuple(Fact(i, t, 0.0, f"group:{CHANNEL_ID}") for i, t in enumerate(texts, start=1))
    await app.store.change_facts("horo", "discord", str(uid), lambda _: FactBook(facts))


async def test_memory_and_forget_are_private_and_act_on_your_own_facts(connect: Any, discord_server: FakeDiscord) -> None:
    app, _ = await connect()
    await plant(app, ALICE, "喜欢苹果", "住在北京")
    shown = await run(discord_server, "memory")
    assert shown["data"]["flags"] == EPHEMERAL
    assert "1. 喜欢苹果" in shown["data"]["content"] and "2. 住在北京" in shown["data"]["content"]
    done = await run(discord_server, "forget", [{"name": "which", "type": 3, "value": "1"}])
    assert done["data"]["flags"] == EPHEMERAL and "forgot fact 1 about you" in done["data"]["content"]
    assert await app.store.facts("horo", "discord", str(ALICE)) == ["住在北京"]
    bad = await run(discord_server, "forget", [{"name": "which", "type": 3, "value": "first"}])
    assert "Usage: /forget" in bad["data"]["content"]


async def test_forgetting_someone_else_needs_manage_server(connect: Any, discord_server: FakeDiscord) -> None:
    app, _ = await connect()
    await plant(app, BOB, "是程序员")
    options = [{"name": "which", "type": 3, "value": "all"}, {"name": "user", "type": 6, "value": str(BOB)}]
    refused = await run(discord_server, "forget", options, about=BOB)
    assert "Manage Server" in refused["data"]["content"]
    assert await app.store.facts("horo", "discord", str(BOB)) == ["是程序员"]
    in_dm = await run(discord_server, "forget", options, about=BOB, guild=False)
    assert "Manage Server" in in_dm["data"]["content"]  # a DM has no admins
    done = await run(discord_server, "forget", options, about=BOB, permissions=MANAGE_GUILD)
    assert "forgot 1 fact about that user" in done["data"]["content"]
    assert await app.store.facts("horo", "discord", str(BOB)) == []


async def test_why_after_a_reply(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    await connect()
    before = await run(discord_server, "why")
    assert before["data"]["flags"] == EPHEMERAL and "No reply here yet" in before["data"]["content"]
    llm.push(Script(text="呵呵，苹果？"))
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫萝，吃苹果吗"))
    await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
    after = await run(discord_server, "why")
    assert after["data"]["content"].startswith("The last reply (to ")


async def test_why_asked_by_someone_else_shows_none_of_the_facts_about_the_person_answered(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    app, _ = await connect()
    await plant(app, ALICE, "是护士", "住在北京")
    llm.push(Script(text="辛苦了。"))
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("赫萝，今天好累"))
    await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
    data = discord_server.interaction("why")
    data["member"]["user"] = user(BOB, "bob")
    await discord_server.dispatch("INTERACTION_CREATE", data)
    by_bob = (await discord_server.wait_for(lambda: discord_server.sent("POST", f"/interactions/{data['id']}/")))[0].body
    assert by_bob["data"]["flags"] == EPHEMERAL and by_bob["data"]["content"].startswith("The last reply (to ")
    assert "是护士" not in by_bob["data"]["content"] and "住在北京" not in by_bob["data"]["content"]
    by_alice = await run(discord_server, "why")
    assert "是护士" in by_alice["data"]["content"] and by_alice["data"]["flags"] == EPHEMERAL
