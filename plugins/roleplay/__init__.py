"""Roleplay: in-character chat for QQ groups and private chats (OneBot v11 and the official API)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from nonebot import get_driver, get_plugin_config, on_message
from nonebot.adapters import Bot, Event, Message
from nonebot.consts import CMD_ARG_KEY, CMD_KEY, PREFIX_KEY
from nonebot.exception import ActionFailed, NetworkError
from nonebot.matcher import current_bot, current_event
from nonebot.plugin import PluginMetadata
from nonebot.rule import CommandRule, Rule, command
from nonebot.typing import T_State

from bot import metrics
from bot.app import App
from bot.commands.handlers import Commands
from bot.commands.table import PRIVATE_ONLY, TABLE, Access, find, help_text, invoke, usage_of
from bot.hosting.onebot_guard import guard_nonebot
from bot.hosting.platforms import holder
from core.config import Settings, load_config
from core.messages import Incoming
from core.sanitize import clean_text
from memory.store import StoreError
from plugins.roleplay import scene
from plugins.roleplay.config import Config
from plugins.roleplay.fronts import Front, answer_command, front_for, outlet_for
from plugins.roleplay.replay import FRONT, OneBotReplayer
from plugins.roleplay.speak_first import onebot_poster

log = logging.getLogger(__name__)

__plugin_meta__ = PluginMetadata(
    name="roleplay",
    description="Chat with a fictional character that remembers the conversation and knows its story.",
    usage="@bot, reply to it, or say its name in a group; private chats are always answered.\n" + help_text(),
    type="application",
    config=Config,
    supported_adapters={"~onebot.v11", "~qq"},
)

HEADS = list(dict.fromkeys(c.name.split()[0] for c in TABLE))  # what follows the slash: persona, reset, ...
plugin_config = get_plugin_config(Config)
_PRIORITY = plugin_config.roleplay_priority
_driver = get_driver()
if not holder.hosted:  # in someone else's nonebot project, its OneBot routes get the door ours have
    guard_nonebot()
holder.offer("qq", lambda settings: onebot_poster(settings.qq))  # the App, opened after this, speaks first with it


def _settings() -> Settings:
    """config.toml (ROLEPLAY_CONFIG) and BOT_* from the environment. Secrets come from the .env beside
    that config.toml, or `.env.roleplay` when it sits in the host project's folder, whose .env is
    nonebot's own."""
    path = plugin_config.roleplay_config
    folder = (path or Path("config.toml")).resolve().parent
    env_file = folder / (".env.roleplay" if folder == Path.cwd().resolve() else ".env")
    return load_config(path, env_file=env_file)


@_driver.on_startup
async def _open_app() -> None:
    """Open the App from config.toml unless the host (our `python -m bot run`) already did; answer
    the OneBot messages journaled before a restart."""
    if holder.app is None and not holder.hosted:
        await holder.open(_settings())
    if holder.app is not None:
        holder.app.replay.register(FRONT, OneBotReplayer(holder.app, _answer))


@_driver.on_shutdown
async def _close_app() -> None:
    """Close the App this plugin opened (the host closes its own)."""
    if not holder.hosted:
        await holder.close()


chat = on_message(priority=_PRIORITY, block=False)


@chat.handle()
async def _chat() -> None:
    # nonebot hands the bot and the event over in its context: a handler parameter is resolved by
    # dependency injection, in tasks of its own, for every message
    bot, event = current_bot.get(), current_event.get()
    front = front_for(bot, event)
    msg = front.incoming(bot, event) if front else None
    if front is None or msg is None or msg.is_self:
        return
    if holder.app is None:  # only while stopping, after the drain (bot/hosting/platforms.py): too late to journal
        log.warning("qq message %s arrived after the bot closed; not answered", msg.message_id)
        return
    taken = await scene.take(holder.app, front, bot, event, msg)  # [qq] accounts: one character per account
    if taken is not None:
        await _answer(holder.app, front, bot, event, taken)


async def _answer(app: App, front: Front, bot: Bot, event: Event, msg: Incoming) -> None:
    """One message through the chain; the reply's text, then its voice clip (also after a restart)."""
    # the text goes out inside the conversation's turn (the outlet's `send`), so a random delay
    # cannot reorder replies and a burst is merged; the voice clip follows outside it
    outlet = outlet_for(front, bot, event, app)
    route = front.route(bot, event) if front.route is not None else None
    try:
        await app.chain.handle(msg, outlet, route)
    except (ActionFailed, NetworkError, StoreError) as exc:
        if not outlet.delivered:  # a voice clip that fails after the text loses nothing
            metrics.message_lost("qq", exc)
        log.warning("qq reply not delivered: %s", exc)
    except Exception as exc:  # nonebot logs it; the message is lost all the same
        if not outlet.delivered:
            metrics.message_lost("qq", exc)
        raise


async def _access(front: Front, bot: Bot, event: Event, msg: Incoming) -> Access:
    """Group owner/admins and the bot's superusers administer a group; only superusers act on others in private."""
    superusers = holder.get().settings.qq.superusers
    admin = await front.is_admin(bot, event, superusers)
    return Access(admin=admin, over_others=(admin and not msg.is_direct) or msg.user_id in superusers)


def _named_user(arg: Message, words: list[str], characters: Collection[str] = ()) -> tuple[str, list[str]]:
    """Someone the arguments name (an @: OneBot `at`, official `mention_user`; or a number after the
    arguments), and the words left. An @ of a character's account ([qq] accounts) names no one."""
    for seg in arg:
        if seg.type == "at" and str(seg.data.get("qq", "")) not in ("", "all", *characters):
            return str(seg.data["qq"]), words
        if seg.type == "mention_user" and seg.data.get("user_id"):
            return str(seg.data["user_id"]), words
    return "", words


class _Commands(CommandRule):
    """nonebot's command rule reading the command its parser found straight from the state: its own
    reads it through three synchronous dependencies, each run in a worker thread, for every message."""

    __slots__ = ()

    async def __call__(self, state: T_State) -> bool:  # type: ignore[override]
        """Whether the message starts with one of these commands."""
        return state[PREFIX_KEY][CMD_KEY] in self.cmds


# nonebot resolves a rule's parameter types in the globals of what it calls, and an instance has none:
# the annotation is given as the type itself, not as this module's postponed text
_Commands.__call__.__annotations__["state"] = T_State


# One matcher for every command of the table (nonebot's parser finds the head, the table the rest) and
# one for all chat: a matcher per command would check its rule for every message.
command(*HEADS)  # the heads join nonebot's command parser, as on_command's would
commands = on_message(Rule(_Commands([(head,) for head in HEADS])), priority=_PRIORITY - 1, block=True)


@commands.handle()
async def _command(bot: Bot, event: Event, state: T_State) -> None:
    """One QQ command (`/persona list|set ID`, `/forget N|all [@someone]`, ...) from the command table."""
    head, arg = state[PREFIX_KEY][CMD_KEY][0], state[PREFIX_KEY][CMD_ARG_KEY]
    front = front_for(bot, event)
    msg = front.incoming(bot, event) if front else None
    msg = scene.for_command(holder.get(), bot, event, msg) if msg is not None else None
    if front is None or msg is None:
        return
    words = clean_text(arg.extract_plain_text()).split()
    found = find([head, *words])
    if found is None:
        await front.answer(bot, event, f"Usage: {usage_of(head)}")
        return
    chosen, args = found
    if chosen.private and not msg.is_direct and front.answer_privately is None:
        await front.answer(bot, event, PRIVATE_ONLY)  # nothing runs that could not be answered
        return
    app, target = holder.get(), ""
    args = scene.with_character(app, chosen, arg, args)  # `/why @赫萝`: the character that account plays
    if chosen.names_user:
        target, args = _named_user(arg, args, app.settings.qq.accounts)
        required = sum(not p.optional for p in chosen.params)
        if not target and len(args) > required and args[-1].isdigit() and args[-1] not in app.personas:
            target, args = args[-1], args[:-1]  # `/forget all 12345`: a QQ number after the arguments
    answer = await invoke(Commands(app), msg, chosen, args, await _access(front, bot, event, msg), target)
    await answer_command(front, bot, event, msg, answer.text, chosen.private)
