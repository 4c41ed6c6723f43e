"""Answering after a restart: the journaled messages of runs that are gone, while they are fresh.

Every few seconds this run says it is alive and adopts what no live run holds (a run that stopped,
or crashed and stopped saying it is alive). Each message goes back through the front that received
it: a front registers a Replayer for its routes (QQ over OneBot, Discord); messages of a front this
process does not run wait in the journal until they are too old ([bot] replay_minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol

from bot.pipeline.ledger import SEEN_TTL, Ledger
from memory.journal import Entry

log = logging.getLogger(__name__)
ALIVE_SECONDS = 10.0  # a run silent this long is gone: another run adopts its messages
SWEEP_SECONDS = 3.0  # how often a run says it is alive and looks for messages to adopt
BATCH = 200
STOP_SECONDS = 5.0  # how long a stop waits for a cancelled sweep or replay before leaving it behind


class Replayer(Protocol):
    """How one front answers, after a restart, a message it received before."""

    async def ready(self, entry: Entry, patience: float) -> bool:
        """Wait (at most `patience` seconds) until the front can reach the message's conversation."""
        ...

    async def answer(self, entry: Entry) -> bool:
        """Hand the message to the chain as the front does a new one (the chain marks it done);
        False when it can no longer be answered (deleted, or the conversation is gone)."""
        ...


class Replay:
    """Keeps this run alive in the journal and answers the messages it adopts."""

    def __init__(
        self,
        ledger: Ledger,
        replay_minutes: float,
        wall: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.ledger = ledger
        self.journal = ledger.journal
        self.fresh = replay_minutes * 60
        self.wall = wall
        self.sleep = sleep
        self.fronts: dict[str, Replayer] = {}
        self._sweeps: set[asyncio.Task[Any]] = set()  # the loop and sweeps a registration starts
        self._replays: set[asyncio.Task[Any]] = set()  # one per conversation being answered again
        self._waits: set[asyncio.Future[bool]] = set()  # replays waiting for their front
        self._on = False

    @property
    def run(self) -> str:
        """This run's name in the journal."""
        return self.ledger.run

    def register(self, front: str, replayer: Replayer) -> None:
        """The front named in routes as `front` answers their messages again, starting now."""
        self.fronts[front] = replayer
        if self._on:
            self._spawn(self._sweeps, self._sweep_once(), "journal sweep")

    async def _loop(self) -> None:
        while self._on:  # checked again after each sweep: a cancellation a client library swallowed still ends it
            await self._sweep_once()
            if self._on:
                await self.sleep(SWEEP_SECONDS)

    async def _sweep_once(self) -> None:
        try:
            await self.sweep()
        except Exception as exc:  # the next sweep tries again
            log.warning("journal: sweep failed (%s: %s)", type(exc).__name__, exc)

    async def sweep(self) -> int:
        """Say this run is alive, adopt what no live run holds and start answering it; how many adopted."""
        await self.journal.alive(self.run, ALIVE_SECONDS)
        adopted: list[Entry] = []
        while self._on:
            found = await self.journal.adopt(self.run, self.wall() - self.fresh, BATCH, SEEN_TTL)
            if found.stale:
                log.warning("journal: %d message(s) older than %g minutes dropped unanswered",
                            found.stale, self.fresh / 60)
            adopted += found.entries
            if len(found.entries) < BATCH:
                break
        by_conversation: dict[str, list[Entry]] = {}
        for entry in adopted:
            if not entry.route.front:
                log.info("journal: %s has no way back to its platform; dropped", entry.key)
                await self.journal.done([entry.key], SEEN_TTL)
            elif entry.route.front not in self.fronts or not self._on:
                await self.journal.release(entry.key, self.run)  # its front may start later
            else:
                by_conversation.setdefault(entry.incoming.conversation.key, []).append(entry)
        if by_conversation:
            count = sum(len(e) for e in by_conversation.values())
            log.info("journal: answering %d message(s) received before a restart", count)
        for key, entries in by_conversation.items():
            self._spawn(self._replays, self._replay(entries), f"replay {key}")
        return len(adopted)

    async def _replay(self, entries: list[Entry]) -> None:
        """One conversation's messages, oldest first, each answered before the next is handed over."""
        for entry in entries:
            if not self._on:
                return  # stopping: what is left stays journaled
            replayer = self.fronts[entry.route.front]
            waiting = asyncio.ensure_future(replayer.ready(entry, max(0.0, entry.at + self.fresh - self.wall())))
            self._waits.add(waiting)
            try:
                ready = await waiting
            except asyncio.CancelledError:
                if waiting.cancelled() and not _cancelling():
                    return  # `stop` ended the wait
                raise
            finally:
                self._waits.discard(waiting)
            if not ready:
                log.warning("journal: %s cannot be answered yet (its connection is not up)", entry.key)
                await self.journal.release(entry.key, self.run)
                continue
            try:
                reachable = await replayer.answer(entry)
            except Exception as exc:  # one message that fails must not stop the others
                log.warning("journal: %s could not be answered again (%s: %s)", entry.key, type(exc).__name__, exc)
                reachable = False
            if not reachable:
                await self.journal.done([entry.key], SEEN_TTL)

    def _spawn(self, tasks: set[asyncio.Task[Any]], work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def stop(self) -> None:
        """Stop sweeping and stop replays waiting for their front; answers under way go on (the
        chain's drain decides how long), later ones stay journaled."""
        self._on = False
        await _cancel([*self._sweeps, *self._waits])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Replay]:
        """The sweeps for as long as the app runs; at the end this run says it has stopped."""
        await self.journal.alive(self.run, ALIVE_SECONDS)  # before any message is journaled
        self._on = True
        self._spawn(self._sweeps, self._loop(), "journal sweeps")
        try:
            yield self
        finally:
            await self.stop()
            await _cancel(list(self._replays))
            await self.journal.gone(self.run)


async def _cancel(tasks: list[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait for them a while; one that will not end is named in the log, never waited on forever."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
    for task in pending:
        name = task.get_name() if isinstance(task, asyncio.Task) else "a wait for a front"
        log.warning("journal: %s did not end within %g s of being cancelled; left behind", name, STOP_SECONDS)


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
