"""Fixtures: a local Discord (REST + gateway) the real discord.py client connects to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import App
from bot.discord_front.front import attach, discord_poster, new_client
from tests.discord.fake_discord import TOKEN, FakeDiscord
from tests.support.openai_server import FakeOpenAI


@pytest.fixture
async def discord_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """The local Discord; discord.py's API base and gateway point at it for this test."""
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(Route, "BASE", fake.api)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway))
    yield fake
    await fake.close()


Connect = Callable[..., Any]


@pytest.fixture
async def connect(
    discord_server: FakeDiscord, make_settings: Any, app_factory: Any, llm: FakeOpenAI
) -> AsyncIterator[Connect]:
    """`await connect(discord={...}, tts=Voice, clocks=Clocks)` -> (app, client), logged in and ready."""
    clients: list[tuple[discord.Client, asyncio.Task[None]]] = []

    async def open_client(*, tts: Any = None, clocks: Any = None, **sections: dict[str, Any]) -> tuple[App, discord.Client]:
        sections.setdefault("llm", {})
        sections["llm"] = {"base_url": llm.base_url, "model": "test-model", "retry_after": 0, **sections["llm"]}
        sections["discord"] = {"token": TOKEN, **sections.get("discord", {})}
        settings = make_settings(**sections)
        client = new_client(settings.discord, guild_ready_timeout=0.05)  # one guild: no need to wait for more
        app: App = await app_factory(settings, voice=tts, clocks=clocks, posters={"discord": discord_poster(client)})
        attach(app, client)
        task = asyncio.create_task(client.start(TOKEN))
        clients.append((client, task))
        await discord_server.wait_for(lambda: client.is_ready() or task.done(), timeout=10)
        if task.done():
            task.result()  # the client could not start: show why
        return app, client

    yield open_client
    crashed = [task.exception() for _, task in clients if task.done() and not task.cancelled() and task.exception()]
    for client, task in clients:
        task.cancel()  # first the gateway loop, so nothing dispatches into a closed client
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    assert not crashed, f"the discord client died during the test: {crashed!r}"
