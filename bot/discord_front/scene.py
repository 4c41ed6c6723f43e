"""Discord scenes: the characters `/scene add` put in a channel, each speaking through the channel's
webhook under its own name and avatar (one webhook per channel, made or found once).

Without the Manage Webhooks permission there is no webhook: the characters then speak as the bot
account, each line starting with its speaker's name, and the webhook pool logs why once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import discord

from bot.discord_front.incoming import referenced
from bot.scene.policy import Member, named
from core.messages import Incoming
from persona.library import PersonaLibrary


def cast_here(scene: Sequence[str], personas: PersonaLibrary, guild: bool) -> list[str]:
    """The characters of a channel's scene (known persona ids); none in a DM or with fewer than two."""
    cast = [pid for pid in dict.fromkeys(scene) if pid in personas]
    return cast if guild and len(cast) >= 2 else []


async def addressed_to(message: discord.Message, msg: Incoming, cast: Sequence[str], personas: PersonaLibrary,
                       own_hooks: Collection[int], lead: str) -> str:
    """The character an @ or a reply reaches alone ("" when the message's words decide).

    A reply to a character's webhook line goes to that character; a reply to the bot account, or an
    @bot that names no character, goes to `lead` (the channel's own character)."""
    if msg.reply_to_bot:
        target = await referenced(message)
        if target is not None and target.webhook_id is not None and target.webhook_id in own_hooks:
            return next((pid for pid in cast if personas.get(pid).name == target.author.name), lead)
        return lead
    if msg.mentions_bot and not named(msg.text, [Member.of(personas.get(pid)) for pid in cast]):
        return lead
    return ""
