"""On Discord every answer references the message it answers: the model's reply, a busy notice, an
example line when the model fails, a rate-limit notice (the real discord.py client, a local Discord)."""

from __future__ import annotations

from typing import Any

from tests.discord.fake_discord import ALICE, BOT_USER, FakeDiscord, user
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"


def posts(fake: FakeDiscord) -> list[Any]:
    return [s for s in fake.sent("POST", "/messages") if "content" in s.body]


def quoted(post: Any) -> int:
    return int(post.body["message_reference"]["message_id"])


async def test_a_busy_notice_and_both_answers_reference_their_messages(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    app, _ = await connect(bot={"busy_notice_seconds": 0.3}, llm={"max_concurrency": 1})
    llm.default = Script(text="咱在。", delay=1.5)  # the second message waits well past the notice time
    first = discord_server.message(f"{MENTION} 在吗", mentions=[BOT_USER])
    second = discord_server.message(f"{MENTION} 我也来了", mentions=[BOT_USER], author=user(ALICE + 7, "bob"))
    await discord_server.dispatch("MESSAGE_CREATE", first)
    await discord_server.dispatch("MESSAGE_CREATE", second)
    sent = await discord_server.wait_for(lambda: len(posts(discord_server)) >= 3 and posts(discord_server))
    busy = [p for p in sent if p.body["content"] in app.personas.get("horo").card.lines.busy]
    assert len(busy) == 1 and quoted(busy[0]) == int(second["id"])  # the one that waited
    answers = [p for p in sent if p.body["content"] == "咱在。"]
    assert [quoted(p) for p in answers] == [int(first["id"]), int(second["id"])]
    assert sent.index(busy[0]) < sent.index(answers[1])  # the real answer still follows


async def test_an_example_line_and_a_rate_limit_notice_reference_their_messages(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    app, _ = await connect(bot={"rate_limit_per_minute": 1})
    llm.push(Script(status=500, error="boom"))
    first = discord_server.message(f"{MENTION} 你好", mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", first)
    await discord_server.wait_for(lambda: posts(discord_server))
    second = discord_server.message(f"{MENTION} 再说一遍", mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", second)
    sent = await discord_server.wait_for(lambda: len(posts(discord_server)) >= 2 and posts(discord_server))
    horo = app.personas.get("horo")
    assert sent[0].body["content"] in [e.char for e in horo.examples()] and quoted(sent[0]) == int(first["id"])
    assert sent[1].body["content"] in horo.card.lines.rate_limited and quoted(sent[1]) == int(second["id"])
