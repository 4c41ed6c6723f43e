"""Slash commands, drawn from the command table (bot/commands/table.py) with its permission checks."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal

import discord
from discord import app_commands

from bot.commands.handlers import MAX_CHAPTER, Answer, Commands
from bot.commands.table import TABLE, Access, Command, Param, invoke, usage_of
from bot.discord_front.outbox import QUIET
from bot.outbound.split import split_text
from core.messages import Incoming

log = logging.getLogger(__name__)

NOT_SERVED = "This server is not on the bot's list ([discord] guilds): commands do nothing here."
Serves = Callable[[int | None], bool]


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


async def answer(interaction: discord.Interaction, result: Answer, *, ephemeral: bool = False,
                 deferred: bool = False) -> None:
    """Send a command's answer, split to Discord's limit; failures are only for the caller's eyes."""
    parts = split_text(result.text) or ["…"]
    private = ephemeral or not result.ok
    if not deferred:  # after "thinking…", every part is a follow-up
        await interaction.response.send_message(parts[0], ephemeral=private, allowed_mentions=QUIET)
        parts = parts[1:]
    for part in parts:
        await interaction.followup.send(part, ephemeral=private, allowed_mentions=QUIET)


def _annotation(param: Param) -> Any:
    """How Discord types an argument; the table's own check runs on the value all the same."""
    if param.kind == "chapter":
        return app_commands.Range[int, 0, MAX_CHAPTER]
    if param.kind == "percent":
        return app_commands.Range[int, 0, 100]
    if param.kind == "switch":
        return Literal["on", "off"]
    return str


def _slash(command: Command, commands: Commands, name: str, serves: Serves) -> app_commands.Command[Any, ..., None]:
    """One slash command drawn from the table: its options, permission and answer as everywhere else."""

    async def callback(interaction: discord.Interaction, **options: Any) -> None:
        if not serves(interaction.guild_id):
            await interaction.response.send_message(NOT_SERVED, ephemeral=True)
            return
        raw = [str(options[p.name]) for p in command.params if options.get(p.name) is not None]
        user = options.get("user")
        access = Access(admin=may_manage(interaction),
                        over_others=interaction.guild_id is not None and interaction.permissions.manage_guild)
        target = str(user.id) if user is not None else ""
        alone = command.private or command.quiet  # an ephemeral answer: only the asker sees it
        if command.slow:
            await interaction.response.defer(ephemeral=alone, thinking=True)
        result = await invoke(commands, incoming_of(interaction), command, raw, access, target)
        await answer(interaction, result, ephemeral=alone, deferred=command.slow)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("interaction", kind, annotation=discord.Interaction)]
    for p in command.params:
        annotation = _annotation(p) | None if p.optional else _annotation(p)
        params.append(inspect.Parameter(p.name, kind, annotation=annotation, default=None if p.optional else inspect.Parameter.empty))
    described = {p.name: p.help for p in command.params}
    if command.names_user:
        params.append(inspect.Parameter("user", kind, annotation=discord.User | None, default=None))
        described["user"] = "someone else (admins)"
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    if described:
        callback = app_commands.describe(**described)(callback)
    return app_commands.Command(name=name, description=command.help[:100], callback=callback)


def build_tree(
    client: discord.Client, commands: Commands, serves: Serves = lambda _: True
) -> app_commands.CommandTree[discord.Client]:
    """The command tree: every command of the table, a two-word name as a group and its subcommand;
    in a server that `serves` refuses, each says so to its caller only and does nothing."""
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    groups: dict[str, app_commands.Group] = {}
    for command in TABLE:
        head, _, leaf = command.name.partition(" ")
        slash = _slash(command, commands, leaf or head, serves)
        for param in command.params:
            if param.kind == "persona":
                slash.autocomplete(param.name)(_persona_ids(commands))
        if leaf:
            if head not in groups:
                groups[head] = app_commands.Group(name=head, description=usage_of(head)[:100])
                tree.add_command(groups[head])
            groups[head].add_command(slash)
        else:
            tree.add_command(slash)
    return tree


def _persona_ids(commands: Commands) -> Any:
    async def persona_ids(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        lib = commands.app.personas
        found = [pid for pid in lib.ids() if current.lower() in f"{pid} {lib.get(pid).name}".lower()]
        return [app_commands.Choice(name=f"{pid} — {lib.get(pid).name}"[:100], value=pid) for pid in found[:25]]

    return persona_ids


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
