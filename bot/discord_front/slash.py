"""Slash commands: /persona list|set, /reset, /voice, /lore, /spoiler, /stats, /memory, /forget, /why, with permission checks."""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands

from bot.commands import MAX_CHAPTER, Answer, BadArgument, Commands, forget_arg
from bot.discord_front.outbox import QUIET
from bot.discord_front.split import split_text
from bot.messages import Incoming

log = logging.getLogger(__name__)

NOT_ALLOWED = "Only members with the Manage Server permission can do that here."


def incoming_of(interaction: discord.Interaction) -> Incoming:
    """The conversation a command acts on: the channel (or thread), or the user's DM."""
    return Incoming(
        platform="discord",
        channel_id=str(interaction.channel_id),
        user_id=str(interaction.user.id),
        display_name=interaction.user.display_name,
        text="",
        is_direct=interaction.guild_id is None,
    )


def may_manage(interaction: discord.Interaction) -> bool:
    """Server managers in a server; in a DM the user owns the conversation."""
    return interaction.guild_id is None or interaction.permissions.manage_guild


async def answer(interaction: discord.Interaction, result: Answer, *, ephemeral: bool = False) -> None:
    """Send a command's answer, split to Discord's limit; failures are only for the caller's eyes."""
    parts = split_text(result.text) or ["…"]
    private = ephemeral or not result.ok
    await interaction.response.send_message(parts[0], ephemeral=private, allowed_mentions=QUIET)
    for part in parts[1:]:
        await interaction.followup.send(part, ephemeral=private, allowed_mentions=QUIET)


def build_tree(client: discord.Client, commands: Commands) -> app_commands.CommandTree[discord.Client]:
    """The command tree with every command installed."""
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    persona = app_commands.Group(name="persona", description="Which character speaks here")

    @persona.command(name="list", description="Every character this bot can be")
    async def persona_list(interaction: discord.Interaction) -> None:
        await answer(interaction, commands.personas(), ephemeral=True)

    @persona.command(name="set", description="Switch the character in this channel (Manage Server)")
    @app_commands.describe(persona="persona id, e.g. horo")
    async def persona_set(interaction: discord.Interaction, persona: str) -> None:
        if not may_manage(interaction):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        await answer(interaction, await commands.set_persona(incoming_of(interaction), persona))

    @persona_set.autocomplete("persona")
    async def persona_ids(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        lib = commands.app.personas
        found = [pid for pid in lib.ids() if current.lower() in f"{pid} {lib.get(pid).name}".lower()]
        return [app_commands.Choice(name=f"{pid} — {lib.get(pid).name}"[:100], value=pid) for pid in found[:25]]

    @app_commands.command(name="reset", description="Forget this channel's conversation (Manage Server; anyone in DMs)")
    async def reset(interaction: discord.Interaction) -> None:
        if not may_manage(interaction):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        await answer(interaction, await commands.reset(incoming_of(interaction)))

    @app_commands.command(name="voice", description="Voice clips after replies in this channel")
    async def voice(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        if not may_manage(interaction):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        await answer(interaction, await commands.voice(incoming_of(interaction), state == "on"))

    @app_commands.command(name="lore", description="What the character recalls about something (only you see it)")
    @app_commands.describe(query="what to look up")
    async def lore(interaction: discord.Interaction, query: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await commands.lore(incoming_of(interaction), query)
        for part in split_text(result.text) or ["…"]:
            await interaction.followup.send(part, ephemeral=True, allowed_mentions=QUIET)

    @app_commands.command(name="spoiler", description="Limit the character's knowledge to chapters up to N; 0 lifts it (Manage Server)")
    @app_commands.describe(chapter="last chapter the character may know; 0 for no limit")
    async def spoiler(interaction: discord.Interaction, chapter: app_commands.Range[int, 0, MAX_CHAPTER]) -> None:
        if not may_manage(interaction):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        await answer(interaction, await commands.spoiler(incoming_of(interaction), chapter))

    @app_commands.command(name="chance", description="Chance in percent to join in unprompted; 0 turns it off (Manage Server)")
    @app_commands.describe(percent="0-100; the [bot] cooldown still applies")
    async def chance(interaction: discord.Interaction, percent: app_commands.Range[int, 0, 100]) -> None:
        if not may_manage(interaction):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        await answer(interaction, await commands.chance(incoming_of(interaction), percent))

    @app_commands.command(name="bots", description="Whether other bots get answers here, with a fall-off (Manage Server)")
    async def bots(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        if not may_manage(interaction):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        await answer(interaction, await commands.bots(incoming_of(interaction), state == "on"))

    @app_commands.command(name="stats", description="Which character, how much it remembers, which model answers")
    async def stats(interaction: discord.Interaction) -> None:
        await answer(interaction, await commands.stats(incoming_of(interaction)), ephemeral=True)

    @app_commands.command(name="memory", description="What the character remembers about you (only you see it)")
    async def memory(interaction: discord.Interaction) -> None:
        await answer(interaction, await commands.memory(incoming_of(interaction)), ephemeral=True)

    @app_commands.command(name="forget", description="Remove facts the character remembers: N from /memory, or all")
    @app_commands.describe(which="a number /memory shows, or all", user="someone else (Manage Server)")
    async def forget(interaction: discord.Interaction, which: str, user: discord.User | None = None) -> None:
        try:
            chosen = forget_arg(which)
        except BadArgument as exc:
            await answer(interaction, Answer(str(exc), ok=False))
            return
        other = user is not None and user.id != interaction.user.id
        if other and (interaction.guild_id is None or not interaction.permissions.manage_guild):
            await answer(interaction, Answer(NOT_ALLOWED, ok=False))
            return
        target = str(user.id) if user is not None and other else ""
        await answer(interaction, await commands.forget(incoming_of(interaction), chosen, target), ephemeral=True)

    @app_commands.command(name="why", description="Which memories, facts, lore and passages the last reply was given")
    async def why(interaction: discord.Interaction) -> None:
        await answer(interaction, await commands.why(incoming_of(interaction)), ephemeral=True)

    tree.add_command(persona)
    tree.add_command(reset)
    tree.add_command(voice)
    tree.add_command(lore)
    tree.add_command(spoiler)
    tree.add_command(stats)
    tree.add_command(chance)
    tree.add_command(bots)
    tree.add_command(memory)
    tree.add_command(forget)
    tree.add_command(why)
    return tree


async def sync_tree(tree: app_commands.CommandTree[discord.Client], guild_ids: list[int]) -> None:
    """Register the commands: in the listed guilds at once, else globally (Discord takes up to an hour)."""
    try:
        if guild_ids:
            for gid in guild_ids:
                guild = discord.Object(id=gid)
                tree.copy_global_to(guild=guild)
                synced = await tree.sync(guild=guild)
                log.info("slash commands: %d synced to guild %s", len(synced), gid)
        else:
            synced = await tree.sync()
            log.info("slash commands: %d synced globally", len(synced))
    except discord.HTTPException as exc:  # the bot still chats without its commands
        log.warning("slash commands not synced: %s", exc)
