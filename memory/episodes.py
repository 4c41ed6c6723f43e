"""Episodic recall: every stored turn of a conversation stays searchable after it leaves the window.

Each process keeps an inverted BM25 index per conversation (CJK characters and bigrams plus
words, as `lexical_tokens` makes them), filled from the store's archive and window and brought
up to date with the few turns added since the last message. A reset (or an idle conversation
expiring) moves the store's floor, and the index is rebuilt from what is left. With an embedder,
memory/recall_dense.py embeds the indexed turns in the background, and the dense ranking is fused
with BM25's by reciprocal rank.
"""

from __future__ import annotations

import logging
import math
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from core.text import truncate_tokens
from memory.age import ago, day_of
from memory.store import ConversationStore
from memory.terms import parts, query_weights, terms
from memory.timeframe import TIMED, Frame, frame
from memory.turns import SessionKey, Turn

if TYPE_CHECKING:
    import asyncio

    from memory.recall_dense import DenseRecall

log = logging.getLogger(__name__)

K1, B = 1.2, 0.75
SAME_SPEAKER = 1.15  # a user asking about something tends to ask about what they said
MIN_OVERLAP = 2.0  # query weight a recalled turn must share: one word in common is not a memory
OWN_WORDS = 1.0  # ...unless the asker said it: "what's my fern called?" needs only "fern"
KEEP_SHARE = 0.2  # hits scoring under this share of the best one are left out
NAMED_SPEAKER = 1.3  # a question naming a member is mostly about what that member said
IN_RANGE = 1.6  # a turn said inside the time range a question names ("last week", "in May")
TIMED_TURN = 1.25  # for a "when" question: a turn that names a time ("yesterday", "in March")
PREV_TF, NEXT_TF = 0.5, 0.3  # how much a turn's neighbours' words count for it (its own count 1 each)
NEAR_SECONDS = 3600.0  # turns further apart than this are not each other's context
ASKED = 0.5  # a question put to the character: its answer, not the question, is the memory
PART_K = 4  # hits kept from each part of a question searched alone (a clause, a member named)
CACHE_TURNS = 200_000  # turns indexed in one process, over all conversations
RRF_K = 10  # reciprocal-rank fusion of the BM25 and dense rankings: 1 / (k + rank)


def _grown(values: array, value: float) -> array:  # type: ignore[type-arg]
    """`values` with `value` appended; a copy when a numpy view still holds the buffer (an exception's frame)."""
    try:
        values.append(value)  # type: ignore[arg-type]
    except BufferError:
        values = array(values.typecode, values)
        values.append(value)  # type: ignore[arg-type]
    return values


class _Postings:
    """One term's documents and term frequencies, appended in document order."""

    __slots__ = ("docs", "tfs")

    def __init__(self) -> None:
        self.docs = array("i")
        self.tfs = array("f")

    def add(self, doc: int, tf: float) -> None:
        self.docs = _grown(self.docs, doc)
        self.tfs = _grown(self.tfs, tf)


class EpisodeIndex:
    """BM25 over one conversation's turns; documents are added in seq order and never removed."""

    def __init__(self, floor: int = 0):
        self.floor = floor
        self.upto = floor  # newest seq indexed
        self.turns: list[Turn] = []
        self.seqs: dict[int, int] = {}  # seq -> document number
        self.speakers = array("i")  # per document: its speaker's number in _speaker_ids
        self._speaker_ids: dict[str, int] = {}
        self.names: dict[str, set[int]] = {}  # a speaker's name as a term -> their numbers
        self.ats = array("d")  # per document: when it was said
        self.timed = array("b")  # per document: 1 when its text names a time ("yesterday", "in May")
        self.asked = array("b")  # per document: 1 for a question put to the character (it tells little)
        self.lengths = array("f")
        self.total = 0.0
        self.postings: dict[str, _Postings] = {}
        self._last_words: set[str] = set()  # the newest turn's words, and every term it is indexed by
        self._last_terms: set[str] = set()

    def __len__(self) -> int:
        return len(self.turns)

    def add(self, turns: Sequence[Turn]) -> int:
        """Index the turns newer than what is indexed; how many were new."""
        added = 0
        for turn in turns:
            if turn.seq <= self.upto:
                continue
            doc = len(self.turns)
            words = terms(turn.text)
            tokens = words + (terms(turn.name) if turn.role == "user" else [])
            counts: dict[str, float] = {}
            for t in tokens:
                counts[t] = counts.get(t, 0) + 1
            # a reply is about what it answers, and a remark about what follows it: each turn is also
            # found, more weakly, by the words of the turn before it, and the turn before by its words
            near = bool(self.turns) and abs(turn.at - self.turns[-1].at) <= NEAR_SECONDS
            for t in self._last_words if near else ():
                counts.setdefault(t, PREV_TF)
            for term, tf in counts.items():
                self._post(term, doc, tf)
            if near:
                for t in set(words) - self._last_terms:
                    self._post(t, doc - 1, NEXT_TF)
            self._last_words, self._last_terms = set(words), set(counts)
            self.turns.append(turn)
            self.seqs[turn.seq] = doc
            number = self._speaker_ids.setdefault(turn.user_id or f"~{turn.name}", len(self._speaker_ids))
            self.speakers = _grown(self.speakers, number)
            for term in terms(turn.name) if turn.role == "user" else ():
                self.names.setdefault(term, set()).add(number)
            self.ats = _grown(self.ats, turn.at)
            self.timed = _grown(self.timed, 1 if TIMED.search(turn.text) else 0)
            asked = turn.role == "user" and turn.addressed and turn.text.rstrip().endswith(("?", "？", "吗"))
            self.asked = _grown(self.asked, 1 if asked else 0)
            self.lengths = _grown(self.lengths, len(tokens))
            self.total += len(tokens)
            self.upto = turn.seq
            added += 1
        return added

    def _post(self, term: str, doc: int, tf: float) -> None:
        post = self.postings.get(term)
        if post is None:
            post = self.postings[term] = _Postings()
        post.add(doc, tf)

    def search(
        self, weights: dict[str, float], k: int, skip: Callable[[Turn], bool], user_id: str = "",
        when: Frame | None = None,
    ) -> list[tuple[float, float, Turn]]:
        """The best `k` turns for the weighted query terms, best first, leaving out those `skip` names.

        Each comes with its score and the query weight it shares (each distinct term counted once).
        Turns of members the query names, and (by `when`) turns in its time range or naming a time
        for a "when" question, count more.
        """
        n = len(self.turns)
        found = [(w, self.postings[t]) for t, w in weights.items() if t in self.postings]
        if not n or not found:
            return []
        # every posting of every query term at once: one pass of numpy, whatever the number of terms
        docs = np.concatenate([np.frombuffer(post.docs, dtype=np.int32) for _, post in found])
        tfs = np.concatenate([np.frombuffer(post.tfs, dtype=np.float32) for _, post in found])
        sizes = [len(post.docs) for _, post in found]
        weight = np.repeat(np.array([w for w, _ in found], dtype=np.float32), sizes)
        idf = np.repeat(np.array([math.log(1 + (n - df + 0.5) / (df + 0.5)) for df in sizes], dtype=np.float32), sizes)
        lengths = np.frombuffer(self.lengths, dtype=np.float32, count=n)[docs]
        norm = K1 * (1 - B + B * lengths / (self.total / n or 1.0))
        scores = np.bincount(docs, weights=weight * idf * tfs * (K1 + 1) / (tfs + norm), minlength=n).astype(np.float64)
        shared = np.bincount(docs, weights=weight, minlength=n)
        speaker = self._speaker_ids.get(user_id) if user_id else None
        speakers = np.frombuffer(self.speakers, dtype=np.int32, count=n)
        if speaker is not None:
            scores[speakers == speaker] *= SAME_SPEAKER
        named = set().union(*(self.names.get(t, set()) for t in weights if weights[t] >= 1.0))
        if named and len(named) < len(self._speaker_ids):
            scores[np.isin(speakers, list(named))] *= NAMED_SPEAKER
        scores[np.frombuffer(self.asked, dtype=np.int8, count=n) == 1] *= ASKED
        if when is not None and when.ranged:
            ats = np.frombuffer(self.ats, dtype=np.float64, count=n)
            scores[(ats >= when.start) & (ats < when.end)] *= IN_RANGE
        if when is not None and when.asks_when:
            scores[np.frombuffer(self.timed, dtype=np.int8, count=n) == 1] *= TIMED_TURN
        want = min(n, k * 4 + 8)
        top = np.argpartition(-scores, want - 1)[:want] if want < n else np.arange(n)
        ranked = sorted(((float(scores[d]), int(d)) for d in top if scores[d] > 0), reverse=True)
        out: list[tuple[float, float, Turn]] = []
        for score, doc in ranked:
            turn = self.turns[doc]
            if skip(turn):
                continue
            out.append((score, float(shared[doc]), turn))
            if len(out) >= k:
                break
        return out

    def window(self, limit: int) -> list[Turn]:
        """The newest `limit` turns, oldest first: what the store's window holds once it is up to date."""
        return [t for t in self.turns[-limit:] if t.seq > self.upto - limit] if limit > 0 else []

    def around(self, seq: int) -> tuple[Turn | None, Turn | None]:
        """The turns just before and after `seq` in this conversation."""
        before = self.seqs.get(seq - 1)
        after = self.seqs.get(seq + 1)
        return (
            self.turns[before] if before is not None else None,
            self.turns[after] if after is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Recollection:
    """A turn recalled for this message, with the turns around it and how long ago it was said."""

    turn: Turn
    before: Turn | None
    after: Turn | None
    age: str
    score: float


class EpisodicMemory:
    """Per-process indexes over each conversation's stored turns (strictly one per conversation)."""

    def __init__(
        self,
        store: ConversationStore,
        *,
        keep_turns: int,
        retention_days: float = 0.0,
        cache_turns: int = CACHE_TURNS,
        dense: DenseRecall | None = None,
    ):
        self.store = store
        self.keep_turns = keep_turns  # the store keeps at most this many per conversation
        self.retention = retention_days * 86400
        self.cache_turns = cache_turns
        self.dense = dense
        self._indexes: OrderedDict[SessionKey, EpisodeIndex] = OrderedDict()

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
        return idx, True

    def _evict(self) -> None:
        total = sum(len(i) for i in self._indexes.values())
        while total > self.cache_turns and len(self._indexes) > 1:
            key, idx = self._indexes.popitem(last=False)
            total -= len(idx)
            if self.dense is not None:
                self.dense.forget(key)

    def forget(self, key: SessionKey) -> None:
        """Drop the conversation's index (after a reset in this process)."""
        self._indexes.pop(key, None)
        if self.dense is not None:
            self.dense.forget(key)

    def embed_query(self, key: SessionKey, message: str) -> asyncio.Task[list[float]] | None:
        """Start embedding the message for dense recall (None: BM25 alone), so it runs while the rest loads."""
        return self.dense.start(key, message) if self.dense is not None else None

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
        query: asyncio.Task[list[float]] | None = None,
    ) -> list[Recollection]:
        """`recall` over an index already brought up to date; `query` is the message's embedding, when started."""
        cutoff = now - self.retention if self.retention > 0 else 0.0

        def skip(turn: Turn) -> bool:
            return turn.seq in visible or (0 < turn.at < cutoff)

        weights = query_weights(message, context, ignore)
        when = frame(message, now)

        def ranked(query: dict[str, float], count: int) -> list[tuple[float, Turn]]:
            found = [
                (score, turn) for score, shared, turn in idx.search(query, count, skip, user_id, when)
                if shared + (OWN_WORDS if user_id and turn.user_id == user_id else 0.0) >= MIN_OVERLAP
            ]
            return [(score, turn) for score, turn in found if score >= found[0][0] * KEEP_SHARE] if found else []

        # the whole message, and each of its parts alone (a clause, a member it names), taken in turns
        lists = [ranked(weights, k)] + [ranked(part, PART_K) for part in parts(message, weights, list(idx.names))]
        hits = interleave(lists)
        if self.dense is not None and query is not None:
            hits = fuse(hits, await self.dense.nearest(key, idx, query, skip, k))[: k + PART_K * (len(lists) - 1)]
        out = []
        for score, turn in hits:
            before, after = idx.around(turn.seq)
            out.append(Recollection(turn, before, after, ago(turn.at, now, language), score))
        return out


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


def _terms(turn: Turn) -> list[str]:
    """What a turn is indexed by: its words, and a user's name."""
    return terms(f"{turn.name} {turn.text}" if turn.role == "user" else turn.text)


def speaker(turn: Turn, persona_name: str) -> str:
    """Who said a turn, as the memory block names them."""
    if turn.role == "assistant":
        return turn.name or persona_name
    return turn.name or turn.user_id or "?"


def render(
    recollections: Sequence[Recollection],
    budget: int,
    count: Callable[[str], int],
    persona_name: str,
    language: str,
    hidden: set[int] = frozenset(),  # type: ignore[assignment]
) -> tuple[str, list[Recollection]]:
    """The "what you remember" text within `budget` tokens, and the recollections it holds.

    The recalled turns are taken best first while they fit, then the turn before and after each
    (best first) while those fit too. They are shown oldest first with who said them, under a
    heading for each day with its date and age. Turns in `hidden` (the prompt's window) are never
    repeated; the recollections returned hold only the neighbours shown.
    """
    sep = "：" if language.lower().startswith("zh") else ": "
    shown: dict[int, tuple[Turn, str]] = {}  # seq -> (turn, its line)
    ages: dict[str, str] = {}  # day -> the age its heading shows
    used = 0

    def line(turn: Turn, cap: int) -> str:
        text = " ".join(turn.text.split())
        if count(text) > cap:
            text = truncate_tokens(text, cap, count) + "…"
        return f"{speaker(turn, persona_name)}{sep}{text}"

    def take(turn: Turn, cap: int, age: str) -> bool:
        nonlocal used
        text = line(turn, cap)
        day = day_of(turn.at, language)
        cost = count(text) + 1 + (count(day) + count(age) + 4 if day not in ages else 0)
        if used + cost > budget:
            return False
        shown[turn.seq] = (turn, text)
        if not ages.get(day):
            ages[day] = age
        used += cost
        return True

    texts: set[str] = set()
    chosen: list[Recollection] = []
    for rec in recollections:
        if rec.turn.seq in hidden or rec.turn.seq in shown or rec.turn.text in texts:
            continue  # in the window already, or the same words said again
        if take(rec.turn, 160, rec.age):
            texts.add(rec.turn.text)
            chosen.append(rec)
    kept = []
    for rec in chosen:  # then the turns around them, best first, while they fit
        day = day_of(rec.turn.at, language)  # a neighbour said another day shows that day without an age
        near = [t for t in (rec.before, rec.after) if t is not None and t.seq not in hidden
                and (t.seq in shown or take(t, 60, rec.age if day_of(t.at, language) == day else ""))]
        kept.append(replace(rec, before=rec.before if rec.before in near else None,
                            after=rec.after if rec.after in near else None))
    out: list[str] = []
    day_now, last = None, -2
    for seq in sorted(shown):
        turn, text = shown[seq]
        day = day_of(turn.at, language)
        if day != day_now:
            head = ("，" if sep == "：" else ", ").join(x for x in (day, ages.get(day, "")) if x)
            out.append(("\n" if out else "") + (f"[{head}]" if head else ""))
            day_now = day
        elif seq != last + 1:
            out.append("")
        out.append(text)
        last = seq
    return "\n".join(x for i, x in enumerate(out) if x or i).strip("\n"), sorted(kept, key=lambda r: r.turn.seq)


_HEADING = {"zh": "你记得的往事", "en": "What you remember from before"}


def heading(language: str) -> str:
    """The title of the "what you remember" block, in the persona's language."""
    return _HEADING["zh" if language.lower().startswith("zh") else "en"]
