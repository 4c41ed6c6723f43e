"""serve_discord: runs inside the caller's loop; startup failures are one clear line."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from discord.http import Route

from bot.discord_front import DiscordStartError, discord_poster, new_client, serve_discord
from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, TOKEN, FakeDiscord
from tests.support.openai_server import FakeOpenAI, Script


@pytest.fixture
def open_app(make_settings: Any, app_factory: Any, llm: FakeOpenAI) -> Any:
    async def build(token: str = TOKEN, **discord: Any) -> tuple[Any, Any]:
        """The app and its client, made as the platforms make them (the client first, for its poster)."""
        settings = make_settings(llm={"base_url": llm.base_url, "model": "m"}, discord={"token": token, **discord})
        client = new_client(settings.discord)
        return await app_factory(settings, posters={"discord": discord_poster(client)}), client

    return build


async def start_error(made: tuple[Any, Any]) -> str:
    with pytest.raises(DiscordStartError) as info:
        await asyncio.wait_for(serve_discord(*made), 20)
    line = str(info.value)
    assert line and "\n" not in line
    return line


async def test_no_token_says_which_variable_to_set(open_app: Any) -> None:
    assert "BOT_DISCORD__TOKEN" in await start_error(await open_app(token=""))


async def test_a_rejected_token_is_one_line(open_app: Any, discord_server: FakeDiscord) -> None:
    line = await start_error(await open_app(token="not-the-token"))
    assert "rejected the bot token" in line and "not-the-token" not in line


async def test_a_refused_message_content_intent_says_where_to_enable_it(open_app: Any, discord_server: FakeDiscord) -> None:
    discord_server.refuse_intents = True
    line = await start_error(await open_app())
    assert "Message Content Intent" in line
    assert discord_server.identify is not None and discord_server.identify["intents"] & (1 << 15)


async def test_no_network_is_one_line(open_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Route, "BASE", "https://discord.invalid/api/v10")  # never resolves (RFC 2606)
    assert "cannot reach Discord at discord.invalid" in await start_error(await open_app())


async def test_nothing_listening_is_one_line(open_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    assert "cannot reach Discord" in await start_error(await open_app())


async def test_serves_until_cancelled(open_app: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="咱在。"))
    task = asyncio.create_task(serve_discord(*await open_app()))
    await discord_server.wait_for(lambda: discord_server.identify, timeout=10)
    await asyncio.sleep(0.1)
    msg = discord_server.message(f"<@{BOT_USER['id']}> hi", mentions=[BOT_USER])
    await discord_server.wait_for(lambda: discord_server.sockets)
    await discord_server.dispatch("MESSAGE_CREATE", msg)
    sent = await discord_server.wait_for(lambda: discord_server.sent("POST", f"/channels/{CHANNEL_ID}/messages"), timeout=10)
    assert sent[0].body["content"] == "咱在。"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await discord_server.wait_for(lambda: not discord_server.sockets)  # the gateway connection was closed


async def test_sharding_identifies_with_this_process_shards(open_app: Any, discord_server: FakeDiscord) -> None:
    task = asyncio.create_task(serve_discord(*await open_app(shard_count=2, shard_ids=[1])))
    try:
        identify = await discord_server.wait_for(lambda: discord_server.identify, timeout=10)
        assert identify["shard"] == [1, 2]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
