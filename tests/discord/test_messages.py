"""Messages through the real discord.py client: who gets answered, how replies are sent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bot.app import Clocks
from memory.turns import SessionKey
from tests.discord.fake_discord import (
    ALICE,
    BOT_USER,
    CHANNEL_ID,
    DM_ID,
    OTHER_BOT,
    THREAD_ID,
    FakeDiscord,
    user,
)
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.texts import talkative_persona, varied_chinese

MENTION = f"<@{BOT_USER['id']}>"


def replies(fake: FakeDiscord, channel: int = CHANNEL_ID) -> list[Any]:
    return fake.sent("POST", f"/channels/{channel}/messages")


async def context_turns(app: Any, channel: int = CHANNEL_ID, persona: str = "horo") -> list[Any]:
    return await app.store.recent(SessionKey(persona, "discord", "group", str(channel)), 50)


def assert_no_mass_mentions(body: dict[str, Any]) -> None:
    allowed = body["allowed_mentions"]
    assert allowed["parse"] == [] and "roles" not in allowed and "users" not in allowed


async def test_a_mention_is_answered_with_a_reply_to_that_message(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="咱在。"))
    await connect()
    msg = discord_server.message(f"{MENTION} 你好 {MENTION}", mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", msg)
    sent = await discord_server.wait_for(lambda: replies(discord_server))
    assert sent[0].body["content"] == "咱在。"
    assert sent[0].body["message_reference"]["message_id"] == int(msg["id"])
    assert_no_mass_mentions(sent[0].body)
    asked = "\n".join(m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user")
    assert "<@" not in asked and "你好 赫萝" in asked  # leading mention dropped, later one named
    assert discord_server.sent("POST", "/typing"), "typing shown while generating"


async def test_a_direct_message_is_answered(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="汝好。"))
    app, _ = await connect()
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("hello", channel_id=DM_ID, guild=False))
    sent = await discord_server.wait_for(lambda: replies(discord_server, DM_ID))
    assert sent[0].body["content"] == "汝好。"
    key = SessionKey("horo", "discord", "dm", str(ALICE))
    assert [t.text for t in await app.store.recent(key, 10)] == ["hello", "汝好。"]


async def test_a_reply_to_the_bot_is_answered_even_when_the_target_must_be_fetched(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text="嗯？"))
    await connect()
    ours = discord_server.message("咱是贤狼。", author=BOT_USER)
    msg = discord_server.message("真的吗", reply_to=ours)
    del msg["referenced_message"]  # not resolved by the gateway: the front-end fetches it
    await discord_server.dispatch("MESSAGE_CREATE", msg)
    await discord_server.wait_for(lambda: replies(discord_server))
    assert discord_server.sent("GET", f"/messages/{ours['id']}")


async def test_a_nickname_from_the_card_summons_the_character(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="何事？"))
    await connect()
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("贤狼大人在吗"))
    sent = await discord_server.wait_for(lambda: replies(discord_server))
    assert sent[0].body["content"] == "何事？"


async def test_unaddressed_messages_are_kept_as_context_without_a_reply(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    app, _ = await connect()
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("今天天气不错"))
    turns = await discord_server.wait_for_async(lambda: context_turns(app))
    assert [(t.text, t.user_id, t.addressed) for t in turns] == [("今天天气不错", str(ALICE), False)]
    assert not replies(discord_server) and not llm.requests
    assert not discord_server.sent("POST", "/typing"), "no typing for messages nobody addressed"


async def test_other_bots_are_ignored_and_the_bot_never_answers_itself(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    app, _ = await connect()
    other = user(OTHER_BOT, "otherbot", bot=True)
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} 赫萝!", author=other, mentions=[BOT_USER]))
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} 赫萝!", author=BOT_USER, mentions=[BOT_USER]))
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("marker"))
    turns = await discord_server.wait_for_async(lambda: _texts_include(app, "marker"))
    assert [t.user_id for t in turns] == [str(OTHER_BOT), str(ALICE)]  # the bot's own message is not stored
    assert not replies(discord_server) and not llm.requests


async def _texts_include(app: Any, text: str) -> list[Any]:
    turns = await context_turns(app)
    return turns if any(t.text == text for t in turns) else []


async def test_long_replies_are_split_and_no_part_can_ping_everyone(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI, tmp_path: Path
) -> None:
    paragraphs = [varied_chinese(1_100, seed, prefix="@everyone ") for seed in range(4)]
    llm.push(Script(text="\n\n".join(paragraphs), chunk_size=500))
    # a reply this long needs that many tokens, and a card that lets its character speak that long
    await connect(llm={"max_tokens": 12_000, "context_tokens": 40_000},
                  personas={"dirs": [str(talkative_persona(tmp_path / "cards"))]})
    msg = discord_server.message(f"{MENTION} 讲个故事", mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", msg)
    sent = await discord_server.wait_for(lambda: len(replies(discord_server)) >= 4 and replies(discord_server))
    assert [len(s.body["content"]) <= 2000 for s in sent] == [True] * len(sent)
    assert sent[0].body["message_reference"]["message_id"] == int(msg["id"])
    assert all("message_reference" not in s.body for s in sent[1:])
    for s in sent:
        assert_no_mass_mentions(s.body)


async def test_streamed_reply_edits_one_message_then_finishes_it(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    ticks = iter(range(10_000))
    clocks = Clocks(mono=lambda: next(ticks) * 0.5)  # every other call is a second later
    said = varied_chinese(120, seed=1)  # within the card's group reply size
    said = said[: said.rindex("。") + 1]  # several sentences: a stream shows whole sentences as they come
    llm.push(Script(text=said, chunk_size=4))
    await connect(discord={"stream_edits": True}, clocks=clocks)
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} 说吧", mentions=[BOT_USER]))
    await discord_server.wait_for(lambda: any(e.body.get("content") == said for e in discord_server.sent("PATCH")))
    posted, edits = replies(discord_server), discord_server.sent("PATCH")
    assert len(posted) == 1 and posted[0].body["content"].endswith("…")
    assert len(edits) >= 2
    for body in [posted[0].body, *(e.body for e in edits)]:
        assert_no_mass_mentions(body)


async def test_thread_messages_are_their_own_conversation(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="在线程里。"))
    app, _ = await connect()
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} hi", channel_id=THREAD_ID, mentions=[BOT_USER]))
    await discord_server.wait_for(lambda: replies(discord_server, THREAD_ID))
    assert [t.text for t in await context_turns(app, THREAD_ID)] == ["hi", "在线程里。"]
    assert await context_turns(app, CHANNEL_ID) == []


async def test_a_bare_mention_calls_the_character_by_name(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="叫咱何事？"))
    app, _ = await connect()
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(MENTION, mentions=[BOT_USER]))
    sent = await discord_server.wait_for(lambda: replies(discord_server))
    assert sent[0].body["content"] == "叫咱何事？"
    assert [t.text for t in await context_turns(app)] == ["（叫了你一声）", "叫咱何事？"]


async def test_attachments_and_mentions_are_described_from_the_parsed_message(connect: Any, discord_server: FakeDiscord) -> None:
    from bot.discord_front.incoming import to_incoming

    _, client = await connect()
    data = discord_server.message(
        f"{MENTION} 看 <@{ALICE}> 的 <#{CHANNEL_ID}>",
        mentions=[BOT_USER, user(ALICE, "alice")],
        attachments=[
            {"id": "1", "filename": "voice-message.ogg", "size": 10, "url": "https://cdn/v.ogg", "proxy_url": "https://cdn/v.ogg",
             "content_type": "audio/ogg"},
            {"id": "2", "filename": "a.png", "size": 10, "url": "https://cdn/a.png", "proxy_url": "https://cdn/a.png",
             "content_type": "image/png"},
        ],
        flags=8192,
    )
    message = client._connection.create_message(channel=client.get_channel(CHANNEL_ID), data=data)  # type: ignore[arg-type]
    assert client.user is not None
    msg = await to_incoming(message, client.user, "赫萝")
    assert msg.text == "看 @alice 的 #general"
    assert [(a.kind, a.name) for a in msg.attachments] == [("voice", "voice-message.ogg"), ("image", "a.png")]
    assert msg.mentions_bot and not msg.is_direct and not msg.author_is_bot and msg.channel_id == str(CHANNEL_ID)
    assert abs(msg.sent_at - time.time()) < 60  # when the message was made, as its snowflake tells


async def test_a_message_that_must_fetch_its_quote_is_still_answered_before_a_later_one(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    """Converting the first message waits on the REST API; the second needs nothing, yet goes second."""
    llm.push(Script(text="first answer"), Script(text="second answer"))
    await connect()
    discord_server.fetch_delay = 0.3
    quoted = discord_server.message("an old message", author=user(OTHER_BOT, "someone", bot=False))
    first = discord_server.message(f"{MENTION} about that", mentions=[BOT_USER])
    first["message_reference"] = {"message_id": quoted["id"], "channel_id": str(CHANNEL_ID)}  # unresolved: fetched
    first["type"] = 19
    second = discord_server.message(f"{MENTION} and this", mentions=[BOT_USER], author=user(THREAD_ID, "bob"))
    await discord_server.dispatch("MESSAGE_CREATE", first)
    await discord_server.dispatch("MESSAGE_CREATE", second)
    sent = await discord_server.wait_for(lambda: len(replies(discord_server)) >= 2 and replies(discord_server))
    assert [s.body["message_reference"]["message_id"] for s in sent] == [int(first["id"]), int(second["id"])]
    assert discord_server.sent("GET", f"/messages/{quoted['id']}")  # it really was fetched
