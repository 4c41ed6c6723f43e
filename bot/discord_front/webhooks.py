"""One channel webhook per channel, through which each persona speaks under its own name."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import discord

log = logging.getLogger(__name__)

WEBHOOK_NAME = "roleplay-personas"
RETRY_SECONDS = 600.0  # a channel that refused a webhook is asked again after this (the permission may come)
Hookable = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.ForumChannel


def _parent(channel: object) -> tuple[Hookable | None, discord.Thread | None]:
    thread = channel if isinstance(channel, discord.Thread) else None
    parent = thread.parent if thread is not None else channel
    return (parent if isinstance(parent, Hookable) else None), thread


class WebhookPool:
    """Finds or creates the bot's webhook in each channel; remembers which webhook ids are ours."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_channel: dict[int, discord.Webhook | None] = {}
        self._refused: dict[int, float] = {}  # channel id -> when it last refused us a webhook
        self._seen: set[int] = set()
        self.clock = clock
        self.ids: set[int] = set()

    async def learn(self, channel: object, me_id: int) -> None:
        """Look up (never create) our webhook in a channel once, so its old messages count as ours
        after a restart."""
        parent, _ = _parent(channel)
        if parent is None or parent.id in self._seen or parent.id in self._by_channel:
            return
        self._seen.add(parent.id)
        try:
            for hook in await parent.webhooks():
                if hook.user is not None and hook.user.id == me_id and hook.token:
                    self.ids.add(hook.id)
                    self._by_channel[parent.id] = hook
        except discord.HTTPException as exc:  # no Manage Webhooks: nothing to learn
            log.debug("webhooks of %s not readable: %s", parent.id, exc)

    async def for_channel(self, channel: object, me_id: int) -> tuple[discord.Webhook, discord.Thread | None] | None:
        """(webhook, thread to post in) for a guild channel or thread; None where none can be had."""
        parent, thread = _parent(channel)
        if parent is None:
            return None  # DMs and group DMs have no webhooks
        refused = self._refused.get(parent.id)
        if parent.id not in self._by_channel or (refused is not None and self.clock() - refused >= RETRY_SECONDS):
            self._by_channel[parent.id] = hook = await self._find_or_create(parent, me_id)
            if hook is None:
                self._refused[parent.id] = self.clock()
            else:
                self._refused.pop(parent.id, None)
        hook = self._by_channel[parent.id]
        return (hook, thread) if hook is not None else None

    async def _find_or_create(self, channel: Hookable, me_id: int) -> discord.Webhook | None:
        try:
            for hook in await channel.webhooks():
                if hook.user is not None and hook.user.id == me_id and hook.token:
                    self.ids.add(hook.id)
                    return hook
            hook = await channel.create_webhook(name=WEBHOOK_NAME, reason="persona voices (webhook mode)")
        except discord.HTTPException as exc:  # usually Forbidden: Manage Webhooks is missing
            log.warning("no webhook in #%s (%s): the bot needs the Manage Webhooks permission there; answering as "
                        "the bot itself", getattr(channel, "name", channel.id), exc)
            return None
        self.ids.add(hook.id)
        return hook

    def forget(self, channel_id: int) -> None:
        """Drop a webhook that stopped working (deleted by an admin); the next send finds a new one."""
        # its id stays in `ids`: its old messages are still the characters' own
        self._by_channel.pop(channel_id, None)
        self._seen.discard(channel_id)
