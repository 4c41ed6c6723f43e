"""Episodic recall: every stored turn of a conversation stays searchable after it leaves the window.

Each process keeps an inverted BM25 index per conversation (CJK characters and bigrams plus
words, as `lexical_tokens` makes them), filled from the store's archive and window and brought
up to date with the few turns added since the last message. A reset (or an idle conversation
expiring) moves the store's floor, and the index is rebuilt from what is left. With an embedder,
memory/recall_dense.py embeds the indexed turns in the background, and the dense ranking is fused
with BM25's by reciprocal rank.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from core.stores import TurnLog
from memory.age import ago
from memory.episode_index import EpisodeIndex
from memory.notebook import Notebook
from memory.profiles import Item
from memory.recollections import Recollection
from memory.terms import clauses, parts, query_weights
from memory.timeframe import Frame, frame, relative
from memory.turns import SessionKey, Turn

if TYPE_CHECKING:
    from core.background import Background
    from memory.recall_dense import DenseRecall

log = logging.getLogger(__name__)

MIN_OVERLAP = 2.0  # query weight a recalled turn must share: one word in common is not a memory
OWN_WORDS = 1.0  # ...unless the asker said it: "what's my fern called?" needs only "fern"
KEEP_SHARE = 0.2  # hits scoring under this share of the best one are left out
IN_RANGE_OVERLAP = 1.0  # ...and inside the range a question names, one word in common is enough
PART_K = 4  # hits kept from each part of a question searched alone (a clause, a member named)
CATCH_UP_SECONDS = 0.2  # an overheard turn is indexed this long after it was stored, with those stored meanwhile
NOTES_INLINE = 500  # turns read for timelines and profiles on the message path; a longer backlog is read in the background
CACHE_TURNS = 200_000  # turns indexed in one process, over all conversations
RRF_K = 10  # reciprocal-rank fusion of the BM25 and dense rankings: 1 / (k + rank)


class EpisodicMemory:
    """Per-process indexes over each conversation's stored turns (strictly one per conversation)."""

    def __init__(
        self,
        store: TurnLog,
        *,
        keep_turns: int,
        retention_days: float = 0.0,
        cache_turns: int = CACHE_TURNS,
        dense: DenseRecall | None = None,
        background: Background | None = None,
        notes: bool = True,
    ):
        self.store = store
        self.notes_on = notes  # keep each conversation's notebook (members' timelines and profiles)
        self.background = background  # where turns overheard are indexed (and embedded) as they come
        self.keep_turns = keep_turns  # the store keeps at most this many per conversation
        self.retention = retention_days * 86400
        self.cache_turns = cache_turns
        self.dense = dense
        self._indexes: OrderedDict[SessionKey, EpisodeIndex] = OrderedDict()
        self._notebooks: dict[SessionKey, Notebook] = {}
        self._behind: set[SessionKey] = set()  # conversations with turns stored since their index was brought up to date

    def overheard(self, key: SessionKey) -> None:
        """A turn was stored without a reply: index it in the background, so the next question finds it ready.

        Its embedding (dense recall) follows from there. One task per conversation at a time; turns
        stored meanwhile are taken by that task's next round.
        """
        if self.background is None:
            return
        self._behind.add(key)
        self.background.spawn(self._catch_up(key), name=f"index turns of {key}", key=f"episodes:{key}")

    async def _catch_up(self, key: SessionKey) -> None:
        while key in self._behind:
            self._behind.discard(key)
            await asyncio.sleep(CATCH_UP_SECONDS)  # a burst of chatter is indexed in one round
            await self.index(key)

    async def index(self, key: SessionKey) -> EpisodeIndex | None:
        """The conversation's index, brought up to date with the store when it answers."""
        return (await self.refresh(key))[0]

    async def refresh(self, key: SessionKey) -> tuple[EpisodeIndex | None, bool]:
        """The conversation's index, and whether it is up to date (False while the store is away)."""
        idx = self._indexes.get(key)
        span = await self.store.turns_since(key, idx.upto if idx is not None else 0)
        if span is None:
            return idx, False
        stale = idx is not None and (span.floor > idx.floor or span.last < idx.upto or len(idx) > self.keep_turns * 1.25)
        if idx is not None and stale:
            span = await self.store.turns_since(key, 0)
            if span is None:
                return idx, False
        if idx is None or stale:
            started = time.perf_counter()
            idx = EpisodeIndex(span.floor)
            idx.add(span.turns)
            if len(idx) > 500:
                log.info("memory: indexed %d turns of %s in %.0f ms", len(idx), key, 1000 * (time.perf_counter() - started))
        else:
            idx.add(span.turns)
        self._indexes[key] = idx
        self._indexes.move_to_end(key)
        self._evict()
        if self.dense is not None:
            self.dense.track(key, idx)
        if self.notes_on:
            book = self._notebooks.get(key)
            if book is None or book.index is not idx:
                book = self._notebooks[key] = Notebook(idx)
            if (book.behind > NOTES_INLINE or book.reading) and self.background is not None:
                # a long backlog (a whole archive, after a start) is read in a worker thread, a slice at a time
                self.background.spawn(book.read_backlog(NOTES_INLINE), name=f"read notes of {key}", key=f"notes:{key}")
            else:
                book.catch_up()
        return idx, True

    def _evict(self) -> None:
        total = sum(len(i) for i in self._indexes.values())
        while total > self.cache_turns and len(self._indexes) > 1:
            key, idx = self._indexes.popitem(last=False)
            total -= len(idx)
            self._notebooks.pop(key, None)
            if self.dense is not None:
                self.dense.forget(key)

    def forget(self, key: SessionKey) -> None:
        """Drop the conversation's index (after a reset in this process)."""
        self._indexes.pop(key, None)
        self._notebooks.pop(key, None)
        if self.dense is not None:
            self.dense.forget(key)

    async def notebook(self, key: SessionKey) -> Notebook | None:
        """The conversation's timelines and profiles, brought up to date (None: kept off, or the store is away)."""
        await self.index(key)
        return self._notebooks.get(key)

    def notes(
        self, key: SessionKey, message: str, context: Sequence[str], *, now: float, ignore: Sequence[str] = (),
        k: int = 12, hidden: Callable[[Item], bool] = lambda item: False,
    ) -> list[Item]:
        """The timeline and profile items best matching the message (from an index `refresh` brought up to date)."""
        book = self._notebooks.get(key)
        if book is None:
            return []
        return book.search(query_weights(message, context, ignore), message, frame(message, now), k, hidden)

    def embed_query(self, key: SessionKey, message: str) -> asyncio.Task[list[list[float]]] | None:
        """Start embedding the message and its clauses for dense recall (None: BM25 alone), so it runs while the rest loads."""
        return self.dense.start(key, message, clauses(message)) if self.dense is not None else None

    async def recall(
        self,
        key: SessionKey,
        message: str,
        context: Sequence[str],
        *,
        visible: set[int],
        now: float,
        language: str,
        user_id: str = "",
        ignore: Sequence[str] = (),
        k: int = 8,
    ) -> list[Recollection]:
        """The older turns most relevant to the message and the last few, best first.

        Turns in `visible` (the window) are left out, and so are turns past the retention; words
        of `ignore` (the character's names) do not count.
        """
        idx = await self.index(key)
        if idx is None:
            return []
        return await self.search(key, idx, message, context, visible=visible, now=now, language=language,
                                 user_id=user_id, ignore=ignore, k=k, query=self.embed_query(key, message))

    async def search(
        self,
        key: SessionKey,
        idx: EpisodeIndex,
        message: str,
        context: Sequence[str],
        *,
        visible: set[int],
        now: float,
        language: str,
        user_id: str = "",
        ignore: Sequence[str] = (),
        k: int = 8,
        query: asyncio.Task[list[list[float]]] | None = None,
    ) -> list[Recollection]:
        """`recall` over an index already brought up to date; `query` is the message's embedding, when started."""
        cutoff = now - self.retention if self.retention > 0 else 0.0

        def skip(turn: Turn) -> bool:
            return turn.seq in visible or (0 < turn.at < cutoff)

        weights = query_weights(message, context, ignore)
        when = frame(message, now)

        memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each term scored once for all the searches below

        def ranked(query: dict[str, float], count: int, inside: Frame | None = None) -> list[tuple[float, Turn]]:
            least = IN_RANGE_OVERLAP if inside else MIN_OVERLAP
            found = [
                (score, turn) for score, shared, turn in idx.search(query, count, skip, user_id, inside or when, bool(inside),
                                                                    memo)
                if shared + (OWN_WORDS if user_id and turn.user_id == user_id else 0.0) >= least
            ]
            return [(score, turn) for score, turn in found if score >= found[0][0] * KEEP_SHARE] if found else []

        # the whole message, and each of its parts alone (a clause, a member it names), taken in turns;
        # a question naming a time range ("in May") also looks inside the range for what shares less with it
        lists = [ranked(weights, k)] + [ranked(part, PART_K) for part in parts(message, weights, list(idx.names))]
        if when.ranged:
            lists.append(ranked(weights, PART_K, when))
        lists += self._relative(message, ranked, ignore)
        hits = interleave(lists)
        if self.dense is not None and query is not None:
            # the message and each clause by meaning, taken in turns like the parts, fused with the words' ranking
            # a question about one member (what has Ann cooked?) by meaning among that member's turns alone: the
            # words' side still ranks everyone's, and the others' turns would take the few dense places
            member = idx.member(weights)
            near_skip = skip if member is None else (lambda turn: skip(turn) or idx.speaker_of(turn) != member)
            near = interleave(await self.dense.nearest(key, idx, query, near_skip, k))
            hits = fuse(hits, near)[: k + PART_K * (len(lists) - 1)]
        out = []
        for score, turn in hits:
            before, after = idx.around(turn.seq)
            out.append(Recollection(turn, before, after, ago(turn.at, now, language), score))
        return out


    @staticmethod
    def _relative(message: str, ranked: Callable[..., list[tuple[float, Turn]]],
                  ignore: Sequence[str]) -> list[list[tuple[float, Turn]]]:
        """For "before X" / "after X": X's turn, and what the rest of the question matches in the month before or after it."""
        rel = relative(message)
        anchor = ranked(query_weights(rel.anchor, [], ignore), 1) if rel is not None else []
        if rel is None or not anchor:
            return []
        rest = query_weights(rel.rest, [], ignore) or query_weights(message, [], ignore)
        return [anchor, ranked(rest, PART_K, rel.around(anchor[0][1].at))]


def interleave(lists: Sequence[Sequence[tuple[float, Turn]]]) -> list[tuple[float, Turn]]:
    """Several rankings as one: the first of each in turn, then the second of each, ...; each turn once."""
    out: list[tuple[float, Turn]] = []
    seen: set[int] = set()
    for rank in range(max((len(hits) for hits in lists), default=0)):
        for hits in lists:
            if rank < len(hits) and hits[rank][1].seq not in seen:
                seen.add(hits[rank][1].seq)
                out.append(hits[rank])
    return out


def fuse(lexical: Sequence[tuple[float, Turn]], dense: Sequence[tuple[float, Turn]]) -> list[tuple[float, Turn]]:
    """Both rankings as one, best first: reciprocal-rank fusion, each list counting 1 / (RRF_K + rank)."""
    if not dense:
        return list(lexical)
    scores: dict[int, float] = {}
    turns: dict[int, Turn] = {}
    for ranked in (lexical, dense):
        for rank, (_, turn) in enumerate(ranked, 1):
            scores[turn.seq] = scores.get(turn.seq, 0.0) + 1.0 / (RRF_K + rank)
            turns[turn.seq] = turn
    return sorted(((score, turns[seq]) for seq, score in scores.items()), key=lambda hit: -hit[0])
