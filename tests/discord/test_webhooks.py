"""Webhook mode: each persona speaks with its own name; naming a character summons it."""

from __future__ import annotations

from typing import Any

from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, THREAD_ID, FakeDiscord, user
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"


def hook_posts(fake: FakeDiscord) -> list[Any]:
    return [r for r in fake.sent("POST", "/webhooks/") if "wtoken" in r.path]


async def test_the_channel_persona_and_a_named_one_speak_through_the_webhook(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text="咱来了。"))
    llm.push(Script(text="在呢，别催。"))
    await connect(discord={"webhooks": True})
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} 在吗", mentions=[BOT_USER]))
    first = await discord_server.wait_for(lambda: hook_posts(discord_server))
    assert discord_server.sent("POST", f"/channels/{CHANNEL_ID}/webhooks"), "the webhook was created"
    assert first[0].body["username"] == "赫萝" and first[0].body["content"] == "咱来了。"
    assert first[0].body["allowed_mentions"]["parse"] == []
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("叶修你在吗"))
    posts = await discord_server.wait_for(lambda: len(hook_posts(discord_server)) == 2 and hook_posts(discord_server))
    assert posts[1].body["username"] == "叶修" and posts[1].body["content"] == "在呢，别催。"
    assert len(discord_server.sent("POST", f"/channels/{CHANNEL_ID}/webhooks")) == 1, "one webhook, reused"
    assert not discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages")


async def test_its_own_webhook_messages_are_never_answered(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    app, _ = await connect(discord={"webhooks": True})
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} hi", mentions=[BOT_USER]))
    (post,) = await discord_server.wait_for(lambda: hook_posts(discord_server))
    wid = int(post.path.split("/")[2])
    echo = discord_server.message("赫萝，叶修在此。", author=user(wid, "叶修", bot=True), webhook_id=wid)
    await discord_server.dispatch("MESSAGE_CREATE", echo)
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("marker"))
    from memory.turns import SessionKey

    key = SessionKey("horo", "discord", "group", str(CHANNEL_ID))

    async def marker_stored() -> bool:
        return any(t.text == "marker" for t in await app.store.recent(key, 20))

    await discord_server.wait_for_async(marker_stored)
    assert len(llm.requests) == 1 and len(hook_posts(discord_server)) == 1


async def test_threads_post_through_the_parent_webhook(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    await connect(discord={"webhooks": True})
    msg = discord_server.message(f"{MENTION} hi", channel_id=THREAD_ID, mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", msg)
    (post,) = await discord_server.wait_for(lambda: hook_posts(discord_server))
    assert post.query.get("thread_id") == str(THREAD_ID)


async def test_without_manage_webhooks_the_bot_answers_as_itself(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    discord_server.permissions_ok = False
    await connect(discord={"webhooks": True})
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} hi", mentions=[BOT_USER]))
    sent = await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"))
    assert sent[0].body["allowed_mentions"]["parse"] == [] and not hook_posts(discord_server)


async def test_after_a_restart_a_reply_to_a_character_goes_to_that_character(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    wid = discord_server.next_id()  # left by an earlier run of the bot
    discord_server.webhooks[wid] = {"id": str(wid), "type": 1, "channel_id": str(CHANNEL_ID), "name": "roleplay-personas",
                                    "token": f"wtoken{wid}", "user": BOT_USER, "avatar": None}
    old = discord_server.message("这局我来。", author=user(wid, "叶修", bot=True), webhook_id=wid)
    llm.push(Script(text="那当然。"))
    await connect(discord={"webhooks": True})
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("真的吗", reply_to=old))
    (post,) = await discord_server.wait_for(lambda: hook_posts(discord_server))
    assert post.path.startswith(f"/webhooks/{wid}/") and post.body["username"] == "叶修"
    assert not discord_server.sent("POST", f"/channels/{CHANNEL_ID}/webhooks"), "the old webhook is reused"
