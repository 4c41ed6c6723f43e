"""Discord messages answered after a restart: fetched again by channel and message id, then handled
as if they had just arrived (the reply quotes them as usual)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import discord

from memory.journal import Entry, Route

log = logging.getLogger(__name__)
FRONT = "discord"


def discord_route(message: discord.Message) -> Route:
    """The ids that find this message again."""
    return Route(FRONT, {"channel": str(message.channel.id), "message": str(message.id)})


class DiscordReplayer:
    """Answers journaled Discord messages once the client is ready."""

    def __init__(self, client: discord.Client, on_message: Callable[[discord.Message], Awaitable[None]]):
        self.client = client
        self.on_message = on_message

    async def ready(self, entry: Entry, patience: float) -> bool:
        """Wait (at most `patience` seconds) until the client is connected."""
        try:
            await asyncio.wait_for(self.client.wait_until_ready(), patience)
        except TimeoutError:
            return False
        return True

    async def answer(self, entry: Entry) -> bool:
        """Fetch the message and handle it as the front does a new one; False when it is gone."""
        ids = entry.route.ids
        try:
            channel = self.client.get_channel(int(ids["channel"])) or await self.client.fetch_channel(int(ids["channel"]))
            if not isinstance(channel, discord.abc.Messageable):
                return False
            message = await channel.fetch_message(int(ids["message"]))
        except (discord.NotFound, discord.Forbidden) as exc:
            log.info("journal: %s can no longer be read (%s)", entry.key, exc)
            return False
        await self.on_message(message)
        return True
