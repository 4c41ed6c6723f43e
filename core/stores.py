"""The stores, split by what they keep; Redis and SQLite implement each (memory/), and a stage is typed
against the ones it uses.

- TurnLog: each conversation's turns (the window, then the archive) and the list of conversations
- Summaries: each conversation's rolling summary
- FactStore: what the persona knows about each member
- ReplyContexts: what the last replies were given (/why, the console)
- SettingsStore: per-channel settings
- Counters: shared sliding-window counts (rate limits, daily caps)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from core.conversation import Conversation
from core.turns import FactBook, LastContext, SessionKey, SessionPage, Summary, Turn, TurnSpan

FactChange = Callable[[FactBook], FactBook]


class StoreError(Exception):
    """The store could not be reached or answered badly."""


class TurnLog(Protocol):
    """Each conversation's turns, numbered in order: the window, and the archive of older ones."""

    async def append(self, key: SessionKey, turns: Sequence[Turn]) -> list[Turn]:
        """Atomically append turns (assigning seq); those past the window's length move to the archive."""
        ...

    async def append_each(self, items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> None:
        """Append turns to several sessions at once (one round trip); each session's part as `append` does."""
        ...

    async def turns_since(self, key: SessionKey, after: int) -> TurnSpan | None:
        """Every stored turn (archive, then window) with seq > `after`, with the floor and the last seq.

        None only where a wrapper knows the store is away.
        """
        ...

    async def recent(self, key: SessionKey, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first."""
        ...

    async def reset(self, key: SessionKey) -> None:
        """Forget the session's turns (archived ones too), summary and last context, for everyone in it."""
        ...

    async def sessions(self, offset: int, limit: int, query: str = "") -> SessionPage:
        """Sessions most recently active first (those whose key contains `query`), with the totals."""
        ...


class Summaries(Protocol):
    """Each conversation's rolling summary of the turns it covers."""

    async def summary(self, key: SessionKey) -> Summary:
        """The rolling summary (empty when none)."""
        ...

    async def set_summary(self, key: SessionKey, summary: Summary) -> bool:
        """Store the summary unless a newer one (or a reset) is already there."""
        ...


class FactStore(Protocol):
    """One fact book per persona and member, across every conversation."""

    async def facts(self, persona: str, platform: str, user_id: str) -> list[str]:
        """The texts of every fact the persona knows about a user (all conversations), oldest first."""
        ...

    async def fact_book(self, persona: str, platform: str, user_id: str) -> FactBook:
        """Every fact about a user, with where and when each was learned."""
        ...

    async def change_facts(self, persona: str, platform: str, user_id: str, change: FactChange) -> FactBook:
        """Replace a user's facts with `change(current)`, atomically (retried on a concurrent change)."""
        ...

    async def forget_user(self, persona: str, platform: str, user_id: str) -> None:
        """Drop every fact about a user."""
        ...


class ReplyContexts(Protocol):
    """What each conversation's last replies were given."""

    async def last_context(self, key: SessionKey) -> LastContext | None:
        """What the conversation's last reply was given (None before the first)."""
        ...

    async def set_last_context(self, key: SessionKey, context: LastContext) -> None:
        """Record what the reply just made was given (the last CONTEXTS_KEPT are kept)."""
        ...

    async def contexts(self, key: SessionKey, limit: int) -> list[LastContext]:
        """What the conversation's last `limit` replies were given, newest first."""
        ...


class SettingsStore(Protocol):
    """Per-channel settings (persona, voice, max_chapter...)."""

    async def settings(self, conversation: Conversation) -> dict[str, str]:
        """Every setting of the channel."""
        ...

    async def set_setting(self, conversation: Conversation, name: str, value: str | None) -> None:
        """Set (or with None, remove) one per-channel setting."""
        ...


class Counters(Protocol):
    """Sliding-window counts shared by every process on the same store."""

    async def rate_hit(self, key: str, window_s: float, limit: int) -> bool:
        """Count one hit on `key` unless `limit` hits already fell in the last `window_s` seconds.

        True when the hit was within the limit.
        """
        ...
