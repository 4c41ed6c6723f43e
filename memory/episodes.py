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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.text import lexical_tokens, truncate_tokens
from memory.age import ago
from memory.store import ConversationStore
from memory.turns import SessionKey, Turn

if TYPE_CHECKING:
    import asyncio

    from memory.recall_dense import DenseRecall

log = logging.getLogger(__name__)

K1, B = 1.2, 0.75
CONTEXT_WEIGHT = 0.3  # the last few messages count this much against the message itself
SAME_SPEAKER = 1.15  # a user asking about something tends to ask about what they said
MIN_OVERLAP = 2.0  # query weight a recalled turn must share: one word in common is not a memory
OWN_WORDS = 1.0  # ...unless the asker said it: "what's my fern called?" needs only "fern"
KEEP_SHARE = 0.4  # hits scoring under this share of the best one are left out
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

    def add(self, doc: int, tf: int) -> None:
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
        self.lengths = array("f")
        self.total = 0.0
        self.postings: dict[str, _Postings] = {}

    def __len__(self) -> int:
        return len(self.turns)

    def add(self, turns: Sequence[Turn]) -> int:
        """Index the turns newer than what is indexed; how many were new."""
        added = 0
        for turn in turns:
            if turn.seq <= self.upto:
                continue
            doc = len(self.turns)
            tokens = _terms(turn)
            counts: dict[str, int] = {}
            for t in tokens:
                counts[t] = counts.get(t, 0) + 1
            for term, tf in counts.items():
                post = self.postings.get(term)
                if post is None:
                    post = self.postings[term] = _Postings()
                post.add(doc, tf)
            self.turns.append(turn)
            self.seqs[turn.seq] = doc
            self.speakers = _grown(self.speakers, self._speaker_ids.setdefault(turn.user_id, len(self._speaker_ids)))
            self.lengths = _grown(self.lengths, len(tokens))
            self.total += len(tokens)
            self.upto = turn.seq
            added += 1
        return added

    def search(
        self, weights: dict[str, float], k: int, skip: Callable[[Turn], bool], user_id: str = ""
    ) -> list[tuple[float, float, Turn]]:
        """The best `k` turns for the weighted query terms, best first, leaving out those `skip` names.

        Each comes with its score and the query weight it shares (each distinct term counted once).
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
        scores = np.bincount(docs, weights=weight * idf * tfs * (K1 + 1) / (tfs + norm), minlength=n)
        shared = np.bincount(docs, weights=weight, minlength=n)
        speaker = self._speaker_ids.get(user_id) if user_id else None
        if speaker is not None:
            scores[np.frombuffer(self.speakers, dtype=np.int32, count=n) == speaker] *= SAME_SPEAKER
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


# words that carry no memory: English function words, and what questions about the past are made of
_EN_WORDS = (
    "i me my mine we our you your yours he him his she her it its they them their this that these those "
    "what which who whom whose when where why how do does did done be been being was were am have has had "
    "in on at for with from by about as into and or but so if then than too very can could will would "
    "shall should may might must just not no yes again ever still remember recall know tell say said told "
    "any some there here up out"
)
_EN_STOP = frozenset(_EN_WORDS.split(" "))
_ASKING = frozenset([
    "什", "么", "吗", "呢", "着", "记", "得", "还", "哪", "几", "谁", "怎", "样", "来", "过", "说", "之", "前", "知", "道",
    "什么", "来着", "记得", "还记", "之前", "以前", "说过", "我说", "你说", "知道", "哪个", "哪里", "多少", "怎么", "是什",
])


def _normal(term: str) -> str:
    """An English word without its 's / 're / n't and a plural s; CJK terms as they are."""
    if not term.isascii():
        return term
    term = term.split("'", 1)[0]
    if len(term) > 4 and term.endswith("ies"):
        return term[:-3] + "y"
    if len(term) > 3 and term.endswith("s") and not term.endswith("ss"):
        return term[:-1]
    return term


def terms(text: str) -> list[str]:
    """What turns are indexed and queried by: `lexical_tokens`, English words normalized, function words out."""
    out = []
    for token in lexical_tokens(text):
        term = _normal(token)
        if term and term not in _EN_STOP:
            out.append(term)
    return out


def query_weights(message: str, context: Sequence[str], ignore: Sequence[str] = ()) -> dict[str, float]:
    """Terms of the message at full weight, of the last few messages at CONTEXT_WEIGHT.

    Question words and the `ignore`d names (the character's, which nearly every message to it holds)
    are left out.
    """
    skip = set(_ASKING)
    for name in ignore:
        skip.update(terms(name))
    weights: dict[str, float] = {}
    for text in context:
        for term in terms(text):
            if term not in skip:
                weights[term] = CONTEXT_WEIGHT
    for term in terms(message):
        if term not in skip:
            weights[term] = 1.0
    return weights


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
        hits = [
            (score, turn) for score, shared, turn in idx.search(weights, k, skip, user_id)
            if shared + (OWN_WORDS if user_id and turn.user_id == user_id else 0.0) >= MIN_OVERLAP
        ]
        if hits:
            best = hits[0][0]
            hits = [(score, turn) for score, turn in hits if score >= best * KEEP_SHARE]
        if self.dense is not None and query is not None:
            hits = fuse(hits, await self.dense.nearest(key, idx, query, skip, k))[:k]
        out = []
        for score, turn in hits:
            before, after = idx.around(turn.seq)
            out.append(Recollection(turn, before, after, ago(turn.at, now, language), score))
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

    Taken best first while they fit, shown oldest first; each is the recalled turn with the one
    before and after it (shared turns are shown once), headed by its age. Turns in `hidden` (the
    prompt's window) are never repeated.
    """
    sep = "：" if language.lower().startswith("zh") else ": "
    chosen: list[tuple[Recollection, list[Turn]]] = []
    shown: set[int] = set(hidden)
    used = 0

    def line(turn: Turn, cap: int) -> str:
        text = " ".join(turn.text.split())
        if count(text) > cap:
            text = truncate_tokens(text, cap, count) + "…"
        return f"{speaker(turn, persona_name)}{sep}{text}"

    texts: set[str] = set()
    for rec in recollections:
        if rec.turn.seq in shown or rec.turn.text in texts:
            continue  # in the window already, or the same words said again
        texts.add(rec.turn.text)
        turns = [t for t in (rec.before, rec.turn, rec.after) if t is not None and t.seq not in shown]
        text = "\n".join(line(t, 160 if t is rec.turn else 60) for t in turns)
        cost = count(text) + count(rec.age) + 4
        if used + cost > budget:
            continue
        chosen.append((rec, turns))
        shown.update(t.seq for t in turns)
        used += cost
    chosen.sort(key=lambda item: item[0].turn.seq)
    parts = []
    for rec, turns in chosen:
        head = f"[{rec.age}]" if rec.age else ""
        body = "\n".join(line(t, 160 if t is rec.turn else 60) for t in turns)
        parts.append(f"{head}\n{body}" if head else body)
    return "\n\n".join(parts), [rec for rec, _ in chosen]


_HEADING = {"zh": "你记得的往事", "en": "What you remember from before"}


def heading(language: str) -> str:
    """The title of the "what you remember" block, in the persona's language."""
    return _HEADING["zh" if language.lower().startswith("zh") else "en"]
