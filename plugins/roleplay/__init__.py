"""Roleplay: in-character chat for QQ groups and private chats (OneBot v11 and the official API)."""

from __future__ import annotations

import logging
from pathlib import Path

from nonebot import get_driver, get_plugin_config, on_command, on_message
from nonebot.adapters import Bot, Event, Message
from nonebot.exception import ActionFailed, NetworkError
from nonebot.params import CommandArg
from nonebot.plugin import PluginMetadata

from bot import metrics
from bot.commands import Answer, BadArgument, Commands, chapter_arg, forget_arg, percent_arg, switch_arg
from bot.config import Settings, load_config
from bot.messages import Incoming, Reply
from bot.platforms import holder
from bot.sanitize import clean_text
from memory.store import StoreError
from plugins.roleplay.config import Config
from plugins.roleplay.fronts import Front, front_for

log = logging.getLogger(__name__)

__plugin_meta__ = PluginMetadata(
    name="roleplay",
    description="Chat with a fictional character that remembers the conversation and knows its story.",
    usage=(
        "@bot, reply to it, or say its name in a group; private chats are always answered.\n"
        "/persona [list|set ID]  /reset  /voice on|off  /lore QUERY  /spoiler N|off  /chance PERCENT  /bots on|off"
        "  /stats  /memory  /forget N|all [@someone]  /why"
    ),
    type="application",
    config=Config,
    supported_adapters={"~onebot.v11", "~qq"},
)

plugin_config = get_plugin_config(Config)
_PRIORITY = plugin_config.roleplay_priority
_driver = get_driver()


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
    """Open the App from config.toml unless the host (our `python -m bot run`) already did."""
    if holder.app is None and not holder.hosted:
        await holder.open(_settings())


@_driver.on_shutdown
async def _close_app() -> None:
    """Close the App this plugin opened (the host closes its own)."""
    if not holder.hosted:
        await holder.close()


chat = on_message(priority=_PRIORITY, block=False)


@chat.handle()
async def _chat(bot: Bot, event: Event) -> None:
    front = front_for(bot, event)
    msg = front.incoming(bot, event) if front else None
    if front is None or msg is None or msg.is_self:
        return
    app = holder.get()

    delivered = False

    async def deliver(reply: Reply) -> None:
        nonlocal delivered
        if reply.text:
            await front.deliver(bot, event, reply, app)
        delivered = True

    # the text goes out inside the conversation's turn (Chain.handle's `send`), so a random delay
    # cannot reorder replies and a burst is merged; the voice clip follows outside it
    try:
        reply = await app.chain.handle(msg, send=deliver)
        if reply is not None and reply.text:
            await front.voice(bot, event, reply, app)
    except (ActionFailed, NetworkError, StoreError) as exc:
        if not delivered:  # a voice clip that fails after the text loses nothing
            metrics.message_lost("qq", exc)
        log.warning("qq reply not delivered: %s", exc)
    except Exception as exc:  # nonebot logs it; the message is lost all the same
        if not delivered:
            metrics.message_lost("qq", exc)
        raise


async def _context(bot: Bot, event: Event) -> tuple[Front, Incoming, Commands] | None:
    front = front_for(bot, event)
    msg = front.incoming(bot, event) if front else None
    if front is None or msg is None:
        return None
    return front, msg, Commands(holder.get())


async def _admin_only(front: Front, bot: Bot, event: Event) -> Answer | None:
    """None when allowed; otherwise the refusal to send."""
    if await front.is_admin(bot, event, holder.get().settings.qq.superusers):
        return None
    return Answer("Only the group owner, admins or the bot's superusers can change that here.", ok=False)


persona_cmd = on_command("persona", priority=_PRIORITY - 1, block=True)
reset_cmd = on_command("reset", priority=_PRIORITY - 1, block=True)
voice_cmd = on_command("voice", priority=_PRIORITY - 1, block=True)
lore_cmd = on_command("lore", priority=_PRIORITY - 1, block=True)
spoiler_cmd = on_command("spoiler", priority=_PRIORITY - 1, block=True)
chance_cmd = on_command("chance", priority=_PRIORITY - 1, block=True)
bots_cmd = on_command("bots", priority=_PRIORITY - 1, block=True)
stats_cmd = on_command("stats", priority=_PRIORITY - 1, block=True)
memory_cmd = on_command("memory", priority=_PRIORITY - 1, block=True)
forget_cmd = on_command("forget", priority=_PRIORITY - 1, block=True)
why_cmd = on_command("why", priority=_PRIORITY - 1, block=True)


@persona_cmd.handle()
async def _persona(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    words = clean_text(arg.extract_plain_text()).split()
    if not words or words == ["list"]:
        answer = commands.personas()
    elif words[0] == "set" and len(words) == 2:
        answer = await _admin_only(front, bot, event) or await commands.set_persona(msg, words[1])
    else:
        answer = Answer("Usage: /persona [list|set ID]", ok=False)
    await front.answer(bot, event, answer.text)


@reset_cmd.handle()
async def _reset(bot: Bot, event: Event) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    answer = await _admin_only(front, bot, event) or await commands.reset(msg)
    await front.answer(bot, event, answer.text)


@voice_cmd.handle()
async def _voice(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    try:
        on = switch_arg(arg.extract_plain_text(), "voice")
    except BadArgument as exc:
        await front.answer(bot, event, str(exc))
        return
    answer = await _admin_only(front, bot, event) or await commands.voice(msg, on)
    await front.answer(bot, event, answer.text)


@lore_cmd.handle()
async def _lore(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    answer = await commands.lore(msg, arg.extract_plain_text())
    await front.answer(bot, event, answer.text)


@spoiler_cmd.handle()
async def _spoiler(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    try:
        chapter = chapter_arg(arg.extract_plain_text())
    except BadArgument as exc:
        await front.answer(bot, event, str(exc))
        return
    answer = await _admin_only(front, bot, event) or await commands.spoiler(msg, chapter)
    await front.answer(bot, event, answer.text)


@chance_cmd.handle()
async def _chance(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    try:
        percent = percent_arg(arg.extract_plain_text())
    except BadArgument as exc:
        await front.answer(bot, event, str(exc))
        return
    answer = await _admin_only(front, bot, event) or await commands.chance(msg, percent)
    await front.answer(bot, event, answer.text)


@bots_cmd.handle()
async def _bots(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    try:
        on = switch_arg(arg.extract_plain_text(), "bots")
    except BadArgument as exc:
        await front.answer(bot, event, str(exc))
        return
    answer = await _admin_only(front, bot, event) or await commands.bots(msg, on)
    await front.answer(bot, event, answer.text)


@stats_cmd.handle()
async def _stats(bot: Bot, event: Event) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    await front.answer(bot, event, (await commands.stats(msg)).text)


@memory_cmd.handle()
async def _memory(bot: Bot, event: Event) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    await front.answer(bot, event, (await commands.memory(msg)).text)


def _named_user(arg: Message, words: list[str]) -> str:
    """Whom `/forget` is about when it names someone: an @ (OneBot `at`, official `mention_user`) or an id."""
    for seg in arg:
        if seg.type == "at" and str(seg.data.get("qq", "")) not in ("", "all"):
            return str(seg.data["qq"])
        if seg.type == "mention_user" and seg.data.get("user_id"):
            return str(seg.data["user_id"])
    return words[1] if len(words) > 1 else ""


@forget_cmd.handle()
async def _forget(bot: Bot, event: Event, arg: Message = CommandArg()) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    words = clean_text(arg.extract_plain_text()).split()
    try:
        which = forget_arg(words[0] if words else "")
    except BadArgument as exc:
        await front.answer(bot, event, str(exc))
        return
    target = _named_user(arg, words)
    if target == msg.user_id:
        target = ""
    refusal = None
    if target and msg.is_direct:  # a private chat has no admins: only the bot's superusers
        if msg.user_id not in holder.get().settings.qq.superusers:
            refusal = Answer("Only group admins or the bot's superusers can make it forget someone else.", ok=False)
    elif target:
        refusal = await _admin_only(front, bot, event)
    answer = refusal or await commands.forget(msg, which, target)
    await front.answer(bot, event, answer.text)


@why_cmd.handle()
async def _why(bot: Bot, event: Event) -> None:
    ctx = await _context(bot, event)
    if ctx is None:
        return
    front, msg, commands = ctx
    await front.answer(bot, event, (await commands.why(msg)).text)
