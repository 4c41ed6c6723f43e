"""One backend's stores together (core/stores.py): what the composition root opens and closes.

Stages take the one store they use (`stores.turns`, `stores.facts`...). The bundle also answers each
store's calls itself, so the console, the chat commands and the tests that reach for everything
keep one handle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from core.conversation import Conversation
from core.stores import (
    Counters,
    FactChange,
    FactStore,
    ReplyContexts,
    SettingsStore,
    StoreError,
    Summaries,
    TurnLog,
)
from core.turns import FactBook, LastContext, SessionKey, SessionPage, Summary, Turn, TurnSpan
from memory.journal import Journal

__all__ = ["ConversationStore", "FactChange", "StoreError", "Stores"]


class ConversationStore(TurnLog, Summaries, FactStore, ReplyContexts, SettingsStore, Counters, Protocol):
    """Every store of one backend, the journal, and the backend's own calls (ping, close)."""

    name: str

    @property
    def journal(self) -> Journal:
        """Messages received and not yet answered (memory/journal.py)."""
        ...

    @property
    def turns(self) -> TurnLog:
        """The turn log alone."""
        ...

    @property
    def summaries(self) -> Summaries:
        """The summaries alone."""
        ...

    @property
    def facts_store(self) -> FactStore:
        """The fact books alone."""
        ...

    @property
    def replies(self) -> ReplyContexts:
        """What the last replies were given, alone."""
        ...

    @property
    def channel_settings(self) -> SettingsStore:
        """The per-channel settings alone."""
        ...

    @property
    def counters(self) -> Counters:
        """The shared counters alone."""
        ...

    async def ping(self) -> None:
        """Raise StoreError when the store does not answer."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Stores:
    """The stores of one backend over one connection; each call goes to the store that keeps its noun."""

    def __init__(
        self,
        name: str,
        turn_log: TurnLog,
        summaries: Summaries,
        facts: FactStore,
        replies: ReplyContexts,
        settings: SettingsStore,
        counters: Counters,
        journal: Journal,
        ping: Callable[[], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
    ):
        self.name = name
        self.turns, self.summaries, self.facts_store, self.replies = turn_log, summaries, facts, replies
        self.channel_settings, self.counters, self.journal = settings, counters, journal
        self._ping, self._close = ping, close

    async def ping(self) -> None:
        """Raise StoreError when the store does not answer."""
        await self._ping()

    async def close(self) -> None:
        """Release connections."""
        await self._close()

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """TurnLog.append."""
        return await self.turns.append(key, turns)

    async def append_each(self, items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> None:
        """TurnLog.append_each."""
        await self.turns.append_each(items)

    async def turns_since(self, key: SessionKey, after: int) -> TurnSpan | None:
        """TurnLog.turns_since."""
        return await self.turns.turns_since(key, after)

    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """TurnLog.recent."""
        return await self.turns.recent(key, limit)

    async def reset(self, key: SessionKey) -> None:
        """TurnLog.reset."""
        await self.turns.reset(key)

    async def sessions(self, offset: int, limit: int, query: str = "") -> SessionPage:
        """TurnLog.sessions."""
        return await self.turns.sessions(offset, limit, query)

    async def summary(self, key: SessionKey) -> Summary:
        """Summaries.summary."""
        return await self.summaries.summary(key)

    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Summaries.set_summary."""
        return await self.summaries.set_summary(key, summary)

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """FactStore.facts."""
        return await self.facts_store.facts(persona, platform, user_id)

    async def fact_book(self, persona: str, platform: str, user_id: str) -> FactBook:
        """FactStore.fact_book."""
        return await self.facts_store.fact_book(persona, platform, user_id)

    async def change_facts(self, persona: str, platform: str, user_id: str, change: FactChange) -> FactBook:
        """FactStore.change_facts."""
        return await self.facts_store.change_facts(persona, platform, user_id, change)

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """FactStore.forget_user."""
        await self.facts_store.forget_user(persona, platform, user_id)

    async def last_context(self, key: SessionKey) -> LastContext | None:
        """ReplyContexts.last_context."""
        return await self.replies.last_context(key)

    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """ReplyContexts.set_last_context."""
        await self.replies.set_last_context(key, context)

    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """ReplyContexts.contexts."""
        return await self.replies.contexts(key, limit)

    async def settings(self, conversation: Conversation) -> dict[str, str]:
        """SettingsStore.settings."""
        return await self.channel_settings.settings(conversation)

    async def set_setting(self, conversation: Conversation, name: str, value: str | None) -> None:
        """SettingsStore.set_setting."""
        await self.channel_settings.set_setting(conversation, name, value)

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """Counters.rate_hit."""
        return await self.counters.rate_hit(key, window_s, limit)
