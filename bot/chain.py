"""The chain: per-session ordering around the literal list of pipeline stages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from bot import metrics
from bot.burst import Bursts
from bot.exchange import ChannelSettings, Exchange, Sink, Stage
from bot.messages import Incoming, Reply
from bot.stages.guard import MOMENT, in_language, pick
from memory.store import ConversationStore
from memory.turns import SessionKey
from persona.card import Persona
from persona.library import PersonaLibrary

log = logging.getLogger(__name__)
SEEN_TTL = 24 * 3600.0  # a platform retry arriving later than this is answered again


class SessionLocks:
    """One lock per conversation, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Serialize work on one key; different keys run concurrently."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def conversation_of(msg: Incoming) -> tuple[str, str]:
    """(scope, id): the channel in groups, the user in DMs."""
    return ("dm", msg.user_id) if msg.is_direct else ("group", msg.channel_id)


def settings_channel(msg: Incoming) -> str:
    """Where a conversation's settings live: scope and id (a QQ group and a user can share a number)."""
    scope, cid = conversation_of(msg)
    return f"{scope}:{cid}"


class Chain:
    """Runs each message through the stages, in order within a conversation."""

    def __init__(
        self,
        stages: Sequence[Stage],
        store: ConversationStore,
        personas: PersonaLibrary,
        default_persona: str,
        merge_bursts: bool = True,
        spoiler_limits: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stages = list(stages)
        self.store = store
        self.personas = personas
        self.default_persona = default_persona
        self.locks = SessionLocks()
        self.bursts = Bursts(merge_bursts)
        self.spoiler_limits = spoiler_limits or {}
        self.clock = clock

    async def handle(
        self, msg: Incoming, sink: Sink | None = None, send: Callable[[Reply], Awaitable[object]] | None = None
    ) -> Reply | None:
        """The character's reply to one message, or None when it stays silent.

        Messages a user sends while their conversation is busy are answered together, once; the
        later calls return None. `send`, when given, posts the reply while the conversation is
        still held, so replies in one conversation go out in order.
        """
        arrived = self.clock()
        metrics.message_in(msg.platform)
        where = settings_channel(msg)
        scope, cid = conversation_of(msg)
        key = f"{msg.platform}:{scope}:{cid}"
        # the message's place in its conversation is taken before anything is awaited: a store call
        # here would let a later message that got its answer sooner take the conversation first
        self.bursts.arrive(key, msg)
        async with self.locks.hold(key):
            try:
                fresh = not msg.message_id or await self.store.claim(
                    msg.platform, msg.bot_id, where, msg.message_id, SEEN_TTL
                )
            except BaseException:
                self.bursts.drop(key, msg)
                raise
            if not fresh:
                self.bursts.drop(key, msg)
                log.info("duplicate delivery of %s:%s in %s ignored", msg.platform, msg.message_id, where)
                return None
            taken = self.bursts.take(key, msg)
            if taken is None:
                return None
            msg = taken
            settings = await self.channel_settings(msg)
            persona = self.persona_for(msg, settings)
            start = Exchange(
                incoming=msg,
                persona=persona,
                session=SessionKey(persona.id, msg.platform, scope, cid),  # type: ignore[arg-type]
                settings=settings,
                text=msg.text,
                sink=sink,
                arrived=arrived,
            )
            try:
                ex = await self._stages(start)
            except Exception as exc:  # one bad message harms no one: the user hears back, the log names it
                log.warning("message %s in %s could not be handled (%s: %s); asked to wait",
                            msg.message_id or "-", key, type(exc).__name__, exc)
                ex = self._moment(start)
            if ex is None:
                return None
            reply = ex.reply
            if reply is not None:
                metrics.reply(reply.mode, self.clock() - arrived)
            if reply is not None and send is not None:
                await send(reply)
            return reply

    async def _stages(self, ex: Exchange) -> Exchange | None:
        current: Exchange | None = ex
        for stage in self.stages:
            assert current is not None
            current = await stage(current)
            if current is None:
                return None
            if current.reply is not None and current.reply.mode == "canned":
                break  # the guard answered with one of the character's own lines: no model call
        return current

    def _moment(self, ex: Exchange) -> Exchange:
        """The character's "give me a moment" line, when a message could not be handled."""
        persona, msg = ex.persona, ex.incoming
        line = pick(persona.card.lines.moment or in_language(MOMENT, persona.card.language), msg.message_id)
        text = persona.render(line, msg.display_name or None)
        return replace(ex, draft=text, mode="fallback",
                       reply=Reply(text, persona.id, persona.name, "fallback", reply_to=msg.message_id))

    async def channel_settings(self, msg: Incoming) -> ChannelSettings:
        """The stored settings of the message's conversation ([knowledge] max_chapter as the default limit)."""
        settings = ChannelSettings.parse(await self.store.settings(msg.platform, settings_channel(msg)))
        default = self.spoiler_limits.get(f"{msg.platform}:{msg.channel_id}")
        if settings.max_chapter is None and not settings.spoilers_off and default is not None:
            settings = replace(settings, max_chapter=default)
        return settings

    async def set_setting(self, msg: Incoming, name: str, value: str | None) -> None:
        """Store (or with None, clear) one setting of the message's conversation."""
        await self.store.set_setting(msg.platform, settings_channel(msg), name, value)

    def persona_for(self, msg: Incoming, settings: ChannelSettings) -> Persona:
        """Explicit persona, else the channel's, else the default."""
        for pid in (msg.persona, settings.persona, self.default_persona):
            if pid and pid in self.personas:
                return self.personas.get(pid)
        return self.personas.get(self.personas.ids()[0])

    async def set_persona(self, msg: Incoming, pid: str) -> Persona:
        """Switch the conversation's persona (each persona keeps its own history)."""
        persona = self.personas.get(pid)
        await self.set_setting(msg, "persona", pid)
        return persona

    async def reset(self, msg: Incoming) -> Persona:
        """Forget the conversation (history and summary) of the active persona, for everyone."""
        scope, cid = conversation_of(msg)
        persona = self.persona_for(msg, await self.channel_settings(msg))
        await self.store.reset(SessionKey(persona.id, msg.platform, scope, cid))  # type: ignore[arg-type]
        return persona
