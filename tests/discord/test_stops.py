"""A Discord message in hand when the bot stops is answered after the restart, once, as a reply to it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord

from bot.app import App
from bot.discord_front.front import attach, discord_poster, new_client
from core.config import Settings
from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, TOKEN, FakeDiscord
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"


@asynccontextmanager
async def running(settings: Settings, fake: FakeDiscord) -> AsyncIterator[tuple[App, discord.Client]]:
    """One bot process's life: the App and its Discord client, logged in; closed in that order's reverse."""
    client = new_client(settings.discord, guild_ready_timeout=0.05)
    async with App.open(settings, posters={"discord": discord_poster(client)}) as app:
        attach(app, client)
        task = asyncio.create_task(client.start(TOKEN))
        try:
            await fake.wait_for(lambda: client.is_ready() or task.done(), timeout=10)
            yield app, client
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()


def replies(fake: FakeDiscord) -> list[Any]:
    return fake.sent("POST", f"/channels/{CHANNEL_ID}/messages")


async def test_a_message_in_hand_at_a_stop_is_answered_after_the_restart(
    discord_server: FakeDiscord, make_settings: Any, llm: FakeOpenAI
) -> None:
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        discord={"token": TOKEN, "stream_edits": False},
        bot={"drain_seconds": 0.0},
    )
    llm.push(Script(text="这句说不完。", delay=5.0))
    msg = discord_server.message(f"{MENTION} 还在吗", mentions=[BOT_USER])
    async with running(settings, discord_server) as (app, _):
        await discord_server.dispatch("MESSAGE_CREATE", msg)
        await asyncio.to_thread(llm.wait_for_requests, 1)
        await app.drain()  # the stop: no time left to answer it
    assert replies(discord_server) == []

    llm.push(Script(text="咱在。"))
    async with running(settings, discord_server) as (app, _):
        sent = await discord_server.wait_for(lambda: replies(discord_server), timeout=10)
        await asyncio.sleep(0.5)  # nothing answered twice
    assert len(replies(discord_server)) == 1
    assert sent[0].body["content"] == "咱在。"
    assert sent[0].body["message_reference"]["message_id"] == int(msg["id"])


async def test_sigterm_to_discord_alone_answers_what_is_in_hand_then_exits_cleanly(
    discord_server: FakeDiscord, make_settings: Any, llm: FakeOpenAI
) -> None:
    from bot.hosting.platforms import _discord_only

    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        discord={"token": TOKEN, "stream_edits": False},
        bot={"drain_seconds": 10.0},
    )
    llm.push(Script(text="咱在，说完再走。", delay=1.0))
    bot = asyncio.create_task(_discord_only(settings))
    await discord_server.wait_for(lambda: discord_server.identify is not None, timeout=10)
    msg = discord_server.message(f"{MENTION} 还在吗", mentions=[BOT_USER])
    await discord_server.dispatch("MESSAGE_CREATE", msg)
    await asyncio.to_thread(llm.wait_for_requests, 1)
    # the process's own SIGTERM, as `docker stop` sends it: only once the bot listens for it
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(bot, 20) == 0
    sent = replies(discord_server)
    assert [s.body["content"] for s in sent] == ["咱在，说完再走。"]
    assert sent[0].body["message_reference"]["message_id"] == int(msg["id"])
    assert not discord_server.sockets  # the client closed its gateway connection
