"""The Discord client: gateway events in, pipeline in the middle, replies out."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot import metrics
from bot.app import App
from bot.commands.handlers import Commands
from bot.discord_front.incoming import to_incoming
from bot.discord_front.outbox import MENTIONS, Outbox
from bot.discord_front.replay import FRONT, DiscordReplayer, discord_route
from bot.discord_front.scene import addressed_to, cast_here
from bot.discord_front.slash import build_tree, sync_tree
from bot.discord_front.webhooks import WebhookPool
from bot.outbound.pacing import Pacing
from bot.pipeline.addressing import addressed
from bot.pipeline.arrivals import Arrivals, Ticket
from core.config import DiscordConfig
from core.conversation import Conversation
from core.messages import Incoming
from core.outlet import Outlet, Poster
from persona.card import Persona

log = logging.getLogger(__name__)

CHAT_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def intents() -> discord.Intents:
    """Guilds, messages and the privileged message-content intent (the bot reads what people say)."""
    wanted = discord.Intents.default()
    wanted.message_content = True
    return wanted


def new_client(cfg: DiscordConfig, **options: Any) -> discord.Client:
    """A Client, or an AutoShardedClient when [discord] shard_count is set (`attach` gives it the app).

    `options` go to discord.py's client as they are (e.g. guild_ready_timeout)."""
    # Voice *channels* are not used (clips go out as attachments), so discord.py's warnings about
    # missing voice-channel libraries would only mislead.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    client: discord.Client
    if cfg.shard_count > 0:
        # shard_ids: this process runs only these shards of shard_count (scaling out)
        shards: dict[str, Any] = {"shard_ids": list(cfg.shard_ids)} if cfg.shard_ids else {}
        client = discord.AutoShardedClient(
            intents=intents(), allowed_mentions=MENTIONS, shard_count=cfg.shard_count, **shards, **options
        )
    else:
        client = discord.Client(intents=intents(), allowed_mentions=MENTIONS, **options)
    return client


def attach(app: App, client: discord.Client) -> Front:
    """The front that answers the client's messages with the app."""
    front = Front(app, client)
    # Handlers are attached to the instance so sharded and plain clients share one Front.
    client.setup_hook = front.setup  # type: ignore[method-assign]
    client.event(front.on_message)
    client.event(front.on_ready)
    return front


def discord_poster(client: discord.Client) -> Poster:
    """How the character speaks first on Discord: an outlet into the channel, quoting nobody."""

    async def outlet(where: Conversation, bot_id: str) -> Outlet | None:
        channel = client.get_channel(int(where.id)) or await client.fetch_channel(int(where.id))
        if not isinstance(channel, discord.abc.Messageable):
            return None
        return Outbox(channel)

    return outlet


def likely_answered(msg: Incoming, persona: Persona) -> bool:
    """Likely to be answered (so typing starts at once); the gate stage has the final word, by the same test."""
    return not msg.author_is_bot and addressed(msg, msg.text, persona)


class Front:
    """Turns each Discord message into an Incoming and sends the character's reply."""

    def __init__(self, app: App, client: discord.Client):
        self.app = app
        self.client = client
        self.cfg = app.settings.discord
        self.pool = WebhookPool()  # every channel's webhook: a scene speaks through it whatever [discord] webhooks says
        self.hooks = self.pool if self.cfg.webhooks else None
        self.avatars = {pid: app.personas.get(pid).card.avatar for pid in app.personas.ids()}
        self.tree = build_tree(client, Commands(app), self.cfg.answers_guild)
        self.arrivals = Arrivals()

    async def setup(self) -> None:
        """After login, before the gateway: register the slash commands; answer what a stop left."""
        await sync_tree(self.tree, list(self.cfg.sync_guilds))
        self.app.replay.register(FRONT, DiscordReplayer(self.client, self.on_message))

    async def on_ready(self) -> None:
        """Say who we are and where."""
        user = self.client.user
        log.info("discord: logged in as %s (%s) in %d servers", user, user.id if user else "?", len(self.client.guilds))

    async def on_message(self, message: discord.Message) -> None:
        """One message: convert, run the pipeline, deliver text then voice."""
        me = self.client.user
        if me is None or message.author.id == me.id or message.type not in CHAT_TYPES:
            return
        if not self.cfg.answers_guild(message.guild.id if message.guild else None):
            return  # a server [discord] guilds leaves out: nothing said there is answered or stored
        ticket = self.arrivals.arrive(message.channel.id)  # before anything is awaited
        try:
            await self._handle(message, me, ticket)
        except Exception as exc:  # one bad message must not take the client down
            metrics.message_lost("discord", exc)
            log.exception("discord message %s failed", message.id)
        finally:
            ticket.placed()

    async def _handle(self, message: discord.Message, me: discord.ClientUser, ticket: Ticket) -> None:
        probe = Incoming("discord", str(message.channel.id), str(message.author.id), "", "", is_direct=message.guild is None)
        persona, settings, _ = await self.app.conversations.here(probe)
        cast = cast_here(settings.scene, self.app.personas, message.guild is not None)
        if (self.hooks is not None or cast) and message.guild is not None:
            await self.pool.learn(message.channel, me.id)
        hooks = self.hooks if not cast else self.pool
        msg = await to_incoming(message, me, persona.name, self.app.personas if hooks and not cast else None, self.pool.ids)
        if msg.is_self:
            return
        if cast:
            await self._scene(message, me, ticket, msg, cast, persona.id)
            return
        speaker = self.app.personas.get(msg.persona) if msg.persona else persona
        outbox = self._outbox(message, me, ticket, hooks)
        if likely_answered(msg, speaker):
            await outbox.start_typing()
        await ticket.turn()  # the channel's earlier messages go first, whatever this one awaited
        try:
            # the text is posted inside the conversation's turn: replies in a channel stay in order
            reply = await self.app.chain.handle(msg, outbox, discord_route(message))
        except Exception:
            await outbox.discard()  # no half-streamed preview left behind
            raise
        finally:
            await outbox.stop_typing()
        if reply is None:
            await outbox.discard()

    def _outbox(self, message: discord.Message, me: discord.ClientUser, ticket: Ticket, hooks: WebhookPool | None,
                label: bool = False) -> Outbox:
        """The outlet answering this message: paced, through the channel's webhook when `hooks` is given."""
        return Outbox(
            message.channel, message, self.app.clocks.mono, stream=self.cfg.stream_edits, hooks=hooks, me_id=me.id,
            pacing=Pacing(self.app.settings.pacing, self.app.clocks.sleep), ticket=ticket, avatars=self.avatars,
            label=label,
        )

    async def _scene(self, message: discord.Message, me: discord.ClientUser, ticket: Ticket, msg: Incoming,
                     cast: list[str], lead: str) -> None:
        """A channel with a scene: the characters the message calls on answer in turn, each through the
        channel's webhook under its own name (or, with no webhook, as the bot with its name first)."""
        outlets = {pid: self._outbox(message, me, ticket, self.pool, label=True) for pid in cast}
        to = await addressed_to(message, msg, cast, self.app.personas, self.pool.ids, lead if lead in cast else cast[0])
        await ticket.turn()
        try:
            await self.app.scenes.handle(msg, cast, outlets, to, dict.fromkeys(cast, discord_route(message)))
        finally:
            for outbox in outlets.values():
                await outbox.stop_typing()
