"""The chain: the intake, per-session ordering around the literal list of pipeline stages, and a stop that loses nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from bot import metrics
from bot.pipeline.addressing import addressed
from bot.pipeline.arrivals import Arrivals, Ticket
from bot.pipeline.burst import Bursts, merge
from bot.pipeline.conversations import Conversations
from bot.pipeline.exchange import ChannelSettings, Exchange, Stage
from bot.pipeline.intake import Intake, Verdict
from bot.pipeline.ledger import Ledger
from bot.pipeline.locks import SessionLocks
from bot.pipeline.waits import Waits
from core.config import BotConfig
from core.conversation import Conversation
from core.messages import Incoming, Reply
from core.outlet import Outlet
from core.stores import Counters, TurnLog
from memory.journal import Journal, Route
from persona.lines import canned

log = logging.getLogger(__name__)
SEND_GRACE = 5.0  # seconds a reply already going out may take to finish when the chain stops


class Observer(Protocol):
    """Watches the conversations go by (the initiative scheduler): every message, every reply sent."""

    def seen(self, msg: Incoming, settings: ChannelSettings) -> None:
        """A message of this conversation reached its turn (with the conversation's settings)."""

    def spoke(self, where: Conversation) -> None:
        """The character said something here."""


async def post(outlet: Outlet, reply: Reply) -> None:
    """A reply part out through the outlet: an emoji as a reaction, anything else as a message."""
    if reply.mode == "reaction":
        await outlet.react(reply.text)
    else:
        await outlet.send(reply)


class Chain:
    """Runs each message through the stages, in order within a conversation."""

    def __init__(
        self,
        stages: Sequence[Stage],
        journal: Journal,
        turns: TurnLog,
        counters: Counters,
        conversations: Conversations,
        cfg: BotConfig,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        observers: Sequence[Observer] = (),
    ):
        self.stages = list(stages)
        self.turns = turns
        self.conversations = conversations
        self.intake = Intake(cfg, turns, counters, conversations, clock, wall)
        self.arrivals = Arrivals()
        self.locks = SessionLocks()
        self.bursts = Bursts(cfg.merge_bursts)
        self.clock = clock
        self.ledger = Ledger(journal, wall)
        self.waits = Waits(cfg.busy_notice_seconds, clock, self._busy_line)
        self.observers = tuple(observers)
        self.accepting = True  # false once `drain` began: messages are journaled, not answered
        self._running: set[asyncio.Future[Reply | None]] = set()
        self._in_line: dict[str, int] = {}  # per conversation: messages placed and not yet through

    async def handle(self, msg: Incoming, outlet: Outlet | None = None, route: Route | None = None) -> Reply | None:
        """The character's reply to one message, or None when it stays silent.

        The intake comes first (bot/pipeline/intake.py): a member over the rate limit is set aside there (kept
        as context; the window's one notice is the reply). Everything that goes out goes through
        `outlet` (core/outlet.py): `placed` once the message has its place in the conversation, before
        anything is awaited; the reply as it is written; the reply itself, posted while the
        conversation is still held (so replies in one conversation go out in order); then its voice
        clip, outside the turn. Without an outlet nothing is posted (the reply is only returned).
        Messages a user sends while their conversation is busy are answered together, once; the later
        calls return None. A message with an id that may be answered is journaled as it takes its place
        (with `route`, how its front reaches it after a restart) and marked done once answered; one
        still unanswered when the chain stops stays journaled, and this call returns None.
        """
        arrived = self.clock()
        metrics.message_in(msg.platform)
        if msg.message_id and self.ledger.holds(msg):
            log.info("duplicate delivery of %s:%s in %s ignored", msg.platform, msg.message_id, msg.conversation)
            return None
        if not self.accepting:
            work: asyncio.Future[Reply | None] = asyncio.ensure_future(self._shelve(msg, route))
        else:
            # the message's place in its conversation is taken before anything is awaited: a store call
            # here would let a later message that got its answer sooner take the conversation first
            key = msg.conversation.key
            ticket = self.arrivals.arrive(key)
            position = self._in_line.get(key, 0)
            self._in_line[key] = position + 1
            if outlet is not None:
                outlet.placed(position)  # the front may now hand over the conversation's next message
            work = asyncio.ensure_future(self._answer(msg, outlet, route, arrived, ticket))
        # the work runs in a task of the chain's own, so a stop cancels it without cancelling the caller
        self._running.add(work)
        work.add_done_callback(self._running.discard)
        try:
            reply = await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if work.cancelled() and (task is None or not task.cancelling()):
                return None  # stopped by `drain`: the message stays journaled for the next run
            raise
        if reply is not None and reply.voice is not None and outlet is not None:
            await outlet.voice(reply.voice)  # outside the turn: the conversation's next message goes on
        return reply

    @property
    def in_hand(self) -> int:
        """Messages being answered (or journaled) right now."""
        return len(self._running)

    async def drain(self, seconds: float, force: Callable[[], bool] = lambda: False) -> int:
        """Stop taking messages (new ones are only journaled), give those in hand `seconds` to be
        answered (less when `force()` turns true), then stop the rest; how many were stopped."""
        self.accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._running and not force() and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._running), timeout=min(left, 0.2))
        stopped = [t for t in self._running if not t.done()]
        for task in stopped:
            task.cancel()
        if stopped:
            await asyncio.wait(stopped, timeout=SEND_GRACE + 1)
        return len(stopped)

    async def _shelve(self, msg: Incoming, route: Route | None) -> None:
        if msg.message_id and self.ledger.arrive(msg, route):
            await self.ledger.shelve(msg)

    async def _answer(
        self, msg: Incoming, outlet: Outlet | None, route: Route | None, arrived: float, ticket: Ticket
    ) -> Reply | None:
        key = msg.conversation.key
        try:
            try:
                verdict = await self._take_place(msg, outlet, route, arrived, ticket)
            finally:
                ticket.placed()
            if verdict is None:
                return None
            if verdict.set_aside:
                return await self._set_aside(msg, verdict, outlet, arrived)
            try:
                async with self.locks.hold(key):
                    return await self._turn(msg, verdict, outlet, arrived)
            except asyncio.CancelledError:
                self.bursts.drop(key, msg)
                self.ledger.let_go([msg])
                raise
            finally:
                self.waits.over(key, [msg])  # answered, merged, a duplicate or stopped: no busy notice for it
        finally:
            left = self._in_line.get(key, 1) - 1
            if left > 0:
                self._in_line[key] = left
            else:
                self._in_line.pop(key, None)

    async def _take_place(
        self, msg: Incoming, outlet: Outlet | None, route: Route | None, arrived: float, ticket: Ticket
    ) -> Verdict | None:
        """The intake's verdict, after the conversation's earlier messages had theirs (the rate limit counts
        in arrival order); a message that goes on takes its place (journaled when it may be answered).
        None: a redelivery of one held now."""
        try:
            await ticket.turn()
            verdict = await self.intake(msg)
        except asyncio.CancelledError:
            if msg.message_id and self.ledger.arrive(msg, route):  # stopped first: journaled for the next run
                self.ledger.let_go([msg])
            raise
        if verdict.set_aside:
            return verdict
        if msg.message_id and not self.ledger.arrive(msg, route, journal=verdict.answerable):
            log.info("duplicate delivery of %s:%s in %s ignored", msg.platform, msg.message_id, msg.conversation)
            return None
        self.bursts.arrive(msg.conversation.key, msg)
        if verdict.answerable:  # a message the character will not answer gets no busy notice
            self.waits.arrive(msg.conversation.key, msg, arrived, outlet)
        return verdict

    async def _set_aside(
        self, msg: Incoming, verdict: Verdict, outlet: Outlet | None, arrived: float
    ) -> Reply | None:
        """A message over the rate limit: kept as context by the intake; the window's notice goes out."""
        for observer in self.observers:
            observer.seen(msg, verdict.settings)
        reply = verdict.notice
        if reply is None:
            return None
        if outlet is not None:
            await outlet.partial(reply.text)
        metrics.reply(reply.mode, self.clock() - arrived)
        if outlet is not None:
            await post(outlet, reply)
        for observer in self.observers:
            observer.spoke(msg.conversation)
        return reply

    async def _turn(self, msg: Incoming, verdict: Verdict, outlet: Outlet | None, arrived: float) -> Reply | None:
        """With the conversation held: the message (and its burst) answered, then marked done."""
        where, key = msg.conversation, msg.conversation.key
        if not self.bursts.holds(key, msg):
            return None  # answered with an earlier message of the same burst
        if not await self.ledger.answers(msg):
            self.bursts.drop(key, msg)
            log.info("duplicate delivery of %s:%s in %s ignored", msg.platform, msg.message_id, where)
            return None
        run = self.bursts.take(key, msg)
        if run is None:
            return None
        run = [m for m in run if m is msg or await self.ledger.answers(m)]
        try:
            # chatter the character will not answer needs no second look at its conversation's settings
            known = verdict if len(run) == 1 and not verdict.answerable else None
            reply = await self._reply(merge(run), run, outlet, arrived, known)
        except asyncio.CancelledError:
            self.ledger.let_go(run)
            raise
        except BaseException:
            await self.ledger.done(run)  # a message that failed would fail again: not kept for later
            raise
        await self.ledger.done(run)
        return reply

    async def _send_whole(self, outlet: Outlet, reply: Reply, run: list[Incoming]) -> None:
        """Send the reply; a stop that arrives meanwhile lets it finish and marks the messages done
        (a reply cut off halfway would be said again after the restart)."""
        sending = asyncio.ensure_future(post(outlet, reply))
        try:
            await asyncio.shield(sending)
        except asyncio.CancelledError:
            await asyncio.wait({sending}, timeout=SEND_GRACE)
            await self.ledger.done(run)
            raise

    async def _reply(
        self, msg: Incoming, run: list[Incoming], outlet: Outlet | None, arrived: float, known: Verdict | None = None,
    ) -> Reply | None:
        """The stages for one (merged) message, inside its conversation's turn; the reply is posted here."""
        where = msg.conversation
        if known is not None:
            persona, settings, session = known.persona, known.settings, known.session
        else:
            persona, settings, session = await self.conversations.here(msg)
        for observer in self.observers:
            observer.seen(msg, settings)
        start = Exchange(
            incoming=msg,
            persona=persona,
            session=session,
            settings=settings,
            text=msg.text,
            sink=outlet.partial if outlet is not None else None,
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
        if reply is not None and outlet is not None:
            await self._send_whole(outlet, reply, run)
        if reply is not None and reply.mode != "reaction":
            for observer in self.observers:
                observer.spoke(where)
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
        return canned(persona, "busy", msg)

    def _moment(self, ex: Exchange) -> Exchange:
        """The character's "give me a moment" line, when a message could not be handled."""
        reply = canned(ex.persona, "moment", ex.incoming, "fallback")
        return replace(ex, draft=reply.text, mode="fallback", reply=reply)
