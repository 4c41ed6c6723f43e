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
from bot.conversations import Conversations
from bot.exchange import ChannelSettings, Exchange, Sink, Stage
from bot.stages.gate import addressed
from bot.stages.guard import MOMENT, in_language, pick
from bot.waits import BUSY, Waits
from core.conversation import Conversation
from core.messages import Incoming, Reply
from memory.store import ConversationStore

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


class Chain:
    """Runs each message through the stages, in order within a conversation."""

    def __init__(
        self,
        stages: Sequence[Stage],
        store: ConversationStore,
        conversations: Conversations,
        merge_bursts: bool = True,
        clock: Callable[[], float] = time.monotonic,
        busy_notice_seconds: float = 0.0,
    ):
        self.stages = list(stages)
        self.store = store
        self.conversations = conversations
        self.locks = SessionLocks()
        self.bursts = Bursts(merge_bursts)
        self.clock = clock
        self.waits = Waits(busy_notice_seconds, clock, self._busy_line)
        # observers (the initiative scheduler): every message with its settings; every reply sent
        self.on_seen: Callable[[Incoming, ChannelSettings], None] | None = None
        self.on_spoke: Callable[[Conversation], None] | None = None

    async def handle(
        self,
        msg: Incoming,
        sink: Sink | None = None,
        send: Callable[[Reply], Awaitable[object]] | None = None,
        placed: Callable[[], None] | None = None,
    ) -> Reply | None:
        """The character's reply to one message, or None when it stays silent.

        Messages a user sends while their conversation is busy are answered together, once; the
        later calls return None. `send`, when given, posts the reply while the conversation is
        still held, so replies in one conversation go out in order. `placed` is called once the
        message has its place in the conversation, before anything is awaited.
        """
        arrived = self.clock()
        metrics.message_in(msg.platform)
        where = msg.conversation
        key = where.key
        # the message's place in its conversation is taken before anything is awaited: a store call
        # here would let a later message that got its answer sooner take the conversation first
        self.bursts.arrive(key, msg)
        self.waits.arrive(key, msg, arrived, send)
        if placed is not None:
            placed()  # the front may now hand over the conversation's next message
        async with self.locks.hold(key):
            try:
                fresh = not msg.message_id or await self.store.claim(where, msg.bot_id, msg.message_id, SEEN_TTL)
            except BaseException:
                self.bursts.drop(key, msg)
                self.waits.over(key, [msg])
                raise
            if not fresh:
                self.bursts.drop(key, msg)
                self.waits.over(key, [msg])
                log.info("duplicate delivery of %s:%s in %s ignored", msg.platform, msg.message_id, where)
                return None
            queued = self.bursts.queued(key)
            taken = self.bursts.take(key, msg)
            if taken is None:
                self.waits.over(key, [msg])
                return None
            left = {id(m) for m in self.bursts.queued(key)}
            run = [m for m in queued if id(m) not in left]  # the messages answered together
            try:
                return await self._answer(taken, run, arrived, sink, send)
            finally:
                self.waits.over(key, run)

    async def _answer(
        self,
        msg: Incoming,
        run: list[Incoming],
        arrived: float,
        sink: Sink | None,
        send: Callable[[Reply], Awaitable[object]] | None,
    ) -> Reply | None:
        """The stages for one (merged) message, inside its conversation's turn; the reply is posted here."""
        where = msg.conversation
        persona, settings, session = await self.conversations.here(msg)
        if self.on_seen is not None:
            self.on_seen(msg, settings)
        start = Exchange(
            incoming=msg,
            persona=persona,
            session=session,
            settings=settings,
            text=msg.text,
            sink=sink,
            arrived=arrived,
            on_sent=lambda: self.waits.over(where.key, run),
        )
        try:
            ex = await self._stages(start)
        except Exception as exc:  # one bad message harms no one: the user hears back, the log names it
            log.warning("message %s in %s could not be handled (%s: %s); asked to wait",
                        msg.message_id or "-", where.key, type(exc).__name__, exc)
            ex = self._moment(start)
        self.waits.over(where.key, run)  # its answer is ready: no busy notice for it any more
        if ex is None:
            return None
        reply = ex.reply
        if reply is not None:
            metrics.reply(reply.mode, self.clock() - arrived)
        if reply is not None and send is not None:
            await send(reply)
        if reply is not None and self.on_spoke is not None and reply.mode != "reaction":
            self.on_spoke(where)
        return reply

    async def _stages(self, ex: Exchange) -> Exchange | None:
        current: Exchange | None = ex
        for stage in self.stages:
            assert current is not None
            current = await stage(current)
            if current is None:
                return None
            if current.reply is not None and current.reply.mode in ("canned", "reaction"):
                break  # the guard answered with one of the character's own lines or an emoji: no model call
        return current

    async def _busy_line(self, msg: Incoming) -> Reply | None:
        """The character's short "busy, one moment" line quoting a waiting message it will answer."""
        persona, _, _ = await self.conversations.here(msg)
        if not addressed(msg, msg.text, persona):
            return None  # a remark the character may never answer gets no notice either
        card = persona.card
        line = pick(card.lines.busy or in_language(BUSY, card.language), f"{msg.user_id}:{msg.message_id}")
        text = persona.render(line, msg.display_name or None)
        return Reply(text, persona.id, persona.name, "canned", reply_to=msg.message_id)

    def _moment(self, ex: Exchange) -> Exchange:
        """The character's "give me a moment" line, when a message could not be handled."""
        persona, msg = ex.persona, ex.incoming
        line = pick(persona.card.lines.moment or in_language(MOMENT, persona.card.language), msg.message_id)
        text = persona.render(line, msg.display_name or None)
        return replace(ex, draft=text, mode="fallback",
                       reply=Reply(text, persona.id, persona.name, "fallback", reply_to=msg.message_id))
