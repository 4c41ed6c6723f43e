"""QQ scenes: one OneBot account per character ([qq] accounts), all in this one bot process.

Every account in a group receives each message; the first copy is taken, the others dropped. The
characters whose accounts are connected and in the group make the scene; each reply goes out
through the account of the character who speaks, as does its voice clip afterwards.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from functools import partial

import nonebot
from nonebot.adapters import Message
from nonebot.adapters.onebot.v11 import ActionFailed, Bot, GroupMessageEvent, MessageEvent, NetworkError

from bot import metrics
from bot.app import App
from bot.commands.table import Command, find
from core.messages import Incoming
from memory.store import StoreError
from plugins.roleplay.copies import OwnIds, copy_keys
from plugins.roleplay.fronts import Front, outlet_for
from plugins.roleplay.onebot import OneBotWire

log = logging.getLogger(__name__)
MEMBERSHIP_SECONDS = 600.0  # how long "this account is (not) in that group" is believed


class Members:
    """Which accounts are in which groups, asked of each account once in a while."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], tuple[bool, float]] = {}

    async def present(self, bot: Bot, group: int) -> bool:
        """Is this account a member of the group (get_group_member_info on itself)?"""
        key, now = (str(bot.self_id), group), time.monotonic()
        known = self._known.get(key)
        if known is not None and now - known[1] < MEMBERSHIP_SECONDS:
            return known[0]
        try:
            await bot.call_api("get_group_member_info", group_id=group, user_id=int(bot.self_id))
            found = True
        except ActionFailed:
            found = False
        except NetworkError as exc:  # unknown for now: asked again next time
            log.info("qq scene: membership of %s in %s unknown (%s)", bot.self_id, group, exc)
            return True
        if len(self._known) > 50_000:
            self._known.clear()
        self._known[key] = (found, now)
        return found


_members = Members()
_own = OwnIds()


def _accounts(app: App) -> dict[str, str]:
    return {sid: pid for sid, pid in app.settings.qq.accounts.items() if pid in app.personas}


def _bots(app: App) -> dict[str, Bot]:
    """The connected OneBot accounts that play a character."""
    accounts = _accounts(app)
    return {sid: b for sid, b in nonebot.get_bots().items() if sid in accounts and isinstance(b, Bot)}


async def cast_of(app: App, event: GroupMessageEvent) -> dict[str, Bot]:
    """The scene in this group: persona id -> the account that speaks for it."""
    accounts = _accounts(app)
    out: dict[str, Bot] = {}
    for sid, account in _bots(app).items():
        if await _members.present(account, event.group_id):
            out[accounts[sid]] = account
    return out


def addressed_to(app: App, bot: Bot, event: GroupMessageEvent) -> str:
    """The character an @ or a reply reaches: the receiving account's when it was @-ed, else the first
    character account the message @s or replies to ("" when none)."""
    accounts = _accounts(app)
    if event.to_me and str(bot.self_id) in accounts:
        return accounts[str(bot.self_id)]
    if event.reply is not None and str(event.reply.sender.user_id) in accounts:
        return accounts[str(event.reply.sender.user_id)]
    for seg in event.message:
        if seg.type == "at" and str(seg.data.get("qq", "")) in accounts:
            return accounts[str(seg.data["qq"])]
    return ""


async def take(app: App, front: Front, bot: object, event: object, msg: Incoming) -> Incoming | None:
    """The message to answer the usual way (with the persona of the account that received it), or
    None when it was handled as a scene, is a copy already taken, or is another character's line."""
    if not isinstance(bot, Bot) or not isinstance(event, MessageEvent) or not app.settings.qq.accounts:
        return msg
    accounts = _accounts(app)
    if msg.user_id in accounts:
        return None  # a character of ours speaking: the scene keeps its lines itself
    own = replace(msg, persona=accounts.get(str(bot.self_id), msg.persona))
    if not isinstance(event, GroupMessageEvent):
        return own  # a private chat: the account's own character answers
    _own.saw(str(bot.self_id), event)
    if _command(msg.text):
        return None  # a command @-ing another account: that account's command matcher has it
    if not app.scenes.first_copy(msg, copy_keys(event)):
        return None
    cast = await cast_of(app, event)
    if len(cast) < 2:
        return own
    await _play(app, front, bot, event, msg, cast)
    return None


def for_command(app: App, bot: object, event: object, msg: Incoming) -> Incoming | None:
    """A command as the account that received it answers it (as its character); None for a copy of
    a group command another account already took."""
    accounts = _accounts(app)
    if not isinstance(bot, Bot) or not accounts:
        return msg
    if isinstance(event, GroupMessageEvent) and not app.scenes.first_copy(msg, copy_keys(event)):
        return None
    return replace(msg, persona=accounts.get(str(bot.self_id), msg.persona))


def with_character(app: App, command: Command, arg: Message, args: list[str]) -> list[str]:
    """The arguments with the character an @ of its account names (`/why @赫萝`), where the command
    takes a character and none was typed."""
    names = [p.name for p in command.params]
    if "character" not in names or len(args) != names.index("character"):
        return args
    accounts = _accounts(app)
    at = (str(seg.data.get("qq", "")) for seg in arg if seg.type == "at")
    character = next((accounts[qq] for qq in at if qq in accounts), "")
    return [*args, character] if character else args


def _command(text: str) -> bool:
    """Does the text start with one of the command table's commands ("/why", "/memory list")?"""
    words = text.split()
    return bool(words) and words[0].startswith("/") and find([words[0][1:], *words[1:2]]) is not None


async def _play(app: App, front: Front, bot: Bot, event: GroupMessageEvent, msg: Incoming, cast: dict[str, Bot]) -> None:
    """One round of the scene: each line out through its character's account (a QQ outlet over that
    account's connection), then the voice clips."""
    # each account quotes the message by its own id for it (None, and no quote, until its copy arrived)
    outlets = {pid: outlet_for(front, account, event, app, OneBotWire(account, event, partial(_own.of, sid, event)))
               for pid, account in cast.items() for sid in [str(account.self_id)]}
    routes = {pid: front.route(account, event) for pid, account in cast.items()} if front.route else {}
    try:
        await app.scenes.handle(msg, list(cast), outlets, addressed_to(app, bot, event), routes)
    except (ActionFailed, NetworkError, StoreError) as exc:
        if not any(o.delivered for o in outlets.values()):
            metrics.message_lost("qq", exc)
        log.warning("qq scene reply not delivered: %s", exc)
