"""Stage 3, recall: the conversation window, summary, user facts, older turns recalled, knowledge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from bot.pipeline.exchange import Exchange
from core.awaiting import each_of
from core.config import MemoryConfig
from core.knowledge import Knowledge, Passage
from core.messages import said_at
from core.stores import FactStore, Summaries, TurnLog
from core.text import estimate_tokens
from memory.age import ago
from memory.episode_index import EpisodeIndex
from memory.episodes import EpisodicMemory
from memory.facts import conversation_of
from memory.profiles import Item
from memory.recall_dense import DenseRecall
from memory.recollections import Recollection
from memory.turns import Fact, FactBook, Summary, Turn
from persona.card import Persona

CONTEXT_TURNS = 3  # the last few messages, besides the message itself, that steer recall
ALWAYS_SHOWN = 4  # the newest window turns, which the prompt always holds: never recalled
RECALL_K = 24  # recalled candidates; compose drops those its window holds and packs the rest
NOTES_K = 40  # timeline and profile items offered to compose (short lines: it packs what fits)


class Read(NamedTuple):
    """What recall reads from the store for one message."""

    idx: EpisodeIndex | None  # the conversation's index, up to date (None when recall is off)
    query: asyncio.Task[list[list[float]]] | None  # the message's embedding, being made (dense recall)
    turns: list[Turn]  # the newest stored turns
    summary: Summary
    book: FactBook | None  # the member's facts (None when facts are off)


def select_window(
    turns: list[Turn], after: int, budget: int, context_limit: int
) -> tuple[list[Turn], list[Turn]]:
    """Split turns newer than `after` into (window, older ones still to be summarized).

    The window is the newest run that fits the token budget, holding at most `context_limit`
    unaddressed group messages.
    """
    fresh = [t for t in turns if t.seq > after]
    window: list[Turn] = []
    used = context = 0
    cut = 0
    for i in range(len(fresh) - 1, -1, -1):
        turn = fresh[i]
        cost = estimate_tokens(turn.text) + estimate_tokens(turn.name) + 4
        if used + cost > budget:
            cut = i + 1
            break
        if not turn.addressed:
            context += 1
            if context > context_limit:
                continue
        window.append(turn)
        used += cost
    window.reverse()
    return window, fresh[:cut]


def fact_line(fact: Fact, now: float, language: str) -> str:
    """A fact as the prompt shows it: with how long ago it was said, when that is known."""
    age = ago(fact.at, now, language)
    if not age:
        return fact.text
    return f"{fact.text}（{age}）" if language.lower().startswith("zh") else f"{fact.text} ({age})"


class Recall:
    """Loads what the character remembers and knows for this message."""

    def __init__(
        self,
        cfg: MemoryConfig,
        store: TurnLog,
        summaries: Summaries,
        facts: FactStore,
        knowledge: Knowledge[Persona],
        clock: Callable[[], float] = time.time,
        episodes: EpisodicMemory | None = None,
        dense: DenseRecall | None = None,
    ):
        self.cfg = cfg
        self.store = store
        self.summaries = summaries
        self.facts = facts
        self.knowledge = knowledge
        self.clock = clock
        self.episodes = episodes or EpisodicMemory(
            store, keep_turns=cfg.max_turns + cfg.archive_turns, retention_days=cfg.archive_days, dense=dense
        )

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill history, summary, facts, older turns recalled, passages, lore and scenes."""
        # the store is read first (one wait, not three); while its answers travel, the passages are searched
        reads: list[asyncio.Future[Any]] = [asyncio.ensure_future(aw) for aw in (
            self._index(ex) if self.cfg.recall_tokens > 0 else self.store.recent(ex.session, self.cfg.max_turns),
            self.summaries.summary(ex.session),
            self._fact_book(ex),
        )]
        try:
            await asyncio.sleep(0)  # the reads go out
            passages = await self.knowledge.search(ex.persona, ex.text, ex.settings.max_chapter)
            turns_or_index, summary, book = await each_of(reads)
        finally:
            for read in reads:
                read.cancel()  # (the search was stopped: the reads are not waited for)
        if self.cfg.recall_tokens > 0:
            # the index holds every stored turn: the window is its newest part, with no second read
            idx, fresh, query = turns_or_index
            turns = idx.window(self.cfg.max_turns) if idx is not None and fresh else []
            return await self._recall(ex, Read(idx, query, turns, summary, book), passages)
        return await self._recall(ex, Read(None, None, turns_or_index, summary, book), passages)

    async def _recall(self, ex: Exchange, read: Read, passages: tuple[Passage, ...]) -> Exchange:
        idx, query, turns, summary, book = read
        # a generous window: compose fits it to the server's context in its own tokens
        window, older = select_window(
            turns, summary.upto, self.cfg.history_tokens * 4, self.cfg.group_context_turns
        )
        # the message's own time: "last week" and ages are counted from when it was said
        now, language = said_at(ex.incoming, self.clock()), ex.persona.card.language
        records: list[Fact] = []
        noted = 0
        if book is not None:
            where = conversation_of(ex.session)
            records = book.visible(where, self.cfg.share_facts)
            noted = book.noted.get(where, 0)
        memories: list[Recollection] = []
        if idx is not None:
            memories = await self.episodes.search(
                ex.session,
                idx,
                ex.text,
                [t.text for t in window[-CONTEXT_TURNS:]],
                visible={t.seq for t in window[-ALWAYS_SHOWN:]},
                now=now,
                language=language,
                user_id=ex.incoming.user_id,
                ignore=ex.persona.triggers(),
                k=RECALL_K,
                query=query,
            )
        notes: list[Item] = []
        forgotten: frozenset[str] = frozenset()
        if idx is not None and self.cfg.profile_tokens > 0:
            found = self.episodes.notes(ex.session, ex.text, [t.text for t in window[-CONTEXT_TURNS:]], now=now,
                                        ignore=ex.persona.triggers(), k=NOTES_K * 2)
            notes, forgotten = await self._unforgotten(ex, found, book)
        recent_text = [t.text for t in window]  # the lorebook cuts this to its scan depth
        known = await self.knowledge.lookup(ex.persona, ex.text, recent_text, ex.settings.max_chapter, passages)
        return replace(
            ex,
            history=tuple(window),
            unsummarized=tuple(older),
            summary=summary,
            facts=tuple(fact_line(f, now, language) for f in records),
            fact_records=tuple(records),
            facts_noted=noted,
            stored=tuple(turns),
            memories=tuple(memories),
            notes=tuple(notes),
            forgotten=forgotten,
            passages=known.passages,
            lore=known.lore,
            scenes=known.scenes,
        )

    async def _index(self, ex: Exchange) -> tuple[EpisodeIndex | None, bool, asyncio.Task[list[list[float]]] | None]:
        """The conversation's index brought up to date, whether it is, and the message's embedding (dense
        recall) started then, so it is made while the summary and facts load."""
        idx, fresh = await self.episodes.refresh(ex.session)
        return idx, fresh, self.episodes.embed_query(ex.session, ex.text) if idx is not None else None

    async def _fact_book(self, ex: Exchange) -> FactBook | None:
        """The member's fact book, when facts are kept (a scene's character has none: facts are about members)."""
        if not self.cfg.facts or ex.incoming.speaker:
            return None
        return await self.facts.fact_book(ex.persona.id, ex.incoming.platform, ex.incoming.user_id)

    async def _unforgotten(self, ex: Exchange, items: list[Item], asker: FactBook | None) -> tuple[list[Item], frozenset[str]]:
        """The items less those their member had `/forget` remove here (each member's fact book keeps which), at most
        NOTES_K; and every item the books read name as forgotten."""
        where = conversation_of(ex.session)
        books: dict[str, FactBook] = {ex.incoming.user_id: asker} if asker is not None else {}
        # every member's book at once (one wait, not one per member named)
        others = list(dict.fromkeys(i.user_id for i in items if i.user_id not in books))
        read = await each_of(self.facts.fact_book(ex.persona.id, ex.incoming.platform, u) for u in others)
        books.update(zip(others, read, strict=True))
        out = []
        for item in items:
            book = books[item.user_id]
            if item.ident not in book.forgotten.get(where, ()):
                out.append(item)
            if len(out) >= NOTES_K:
                break
        return out, frozenset(i for b in books.values() for i in b.forgotten.get(where, ()))
