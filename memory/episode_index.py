"""BM25 over one conversation's turns: CJK characters and bigrams plus stemmed words, as memory/terms.py makes them.

Documents are added in seq order and never removed. A turn is also found, more weakly, by the words
of the turn before it (a reply is about what it answers), and the turn before by its words. Scores
lean towards turns of the asker, of members the query names, and (by the question's time frame)
turns said inside its range or naming a time for a "when" question.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

import numpy as np

from memory.terms import terms
from memory.timeframe import TIMED, Frame
from memory.turns import Turn

K1, B = 1.2, 0.75
SAME_SPEAKER = 1.15  # a user asking about something tends to ask about what they said
NAMED_SPEAKER = 1.3  # a question naming a member is mostly about what that member said
IN_RANGE = 1.6  # a turn said inside the time range a question names ("last week", "in May")
TIMED_TURN = 1.25  # for a "when" question: a turn that names a time ("yesterday", "in March")
PREV_TF, NEXT_TF = 0.5, 0.3  # how much a turn's neighbours' words count for it (its own count 1 each)
NEAR_SECONDS = 3600.0  # turns further apart than this are not each other's context
ASKED = 0.5  # a question put to the character: its answer, not the question, is the memory


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

    def __init__(self, floor: int = 0, near_seconds: float = NEAR_SECONDS):
        self.floor = floor
        self.near_seconds = near_seconds  # below 0: documents are never each other's context
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
            near = bool(self.turns) and abs(turn.at - self.turns[-1].at) <= self.near_seconds
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
        when: Frame | None = None, inside: bool = False, memo: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> list[tuple[float, float, Turn]]:
        """The best `k` turns for the weighted query terms, best first, leaving out those `skip` names.

        Each comes with its score and the query weight it shares (each distinct term counted once).
        Turns of members the query names, and (by `when`) turns in its time range or naming a time
        for a "when" question, count more; `inside`: only turns in the range. `memo` keeps each term's
        scores between the searches of one message (its parts search the same terms again).
        """
        n = len(self.turns)
        memo = {} if memo is None else memo
        self._score([t for t in weights if t in self.postings and t not in memo], memo)
        found = [(w, memo[t]) for t, w in weights.items() if t in self.postings]
        if not n or not found:
            return []
        # every posting of every query term at once: one pass of numpy, whatever the number of terms
        docs = np.concatenate([docs for _, (docs, _) in found])
        sizes = [len(docs) for _, (docs, _) in found]
        weight = np.repeat(np.array([w for w, _ in found], dtype=np.float32), sizes)
        parts = np.concatenate([part for _, (_, part) in found])
        # from here on only the documents holding a query term: the rest of a long archive is never touched
        full = np.bincount(docs, weights=weight * parts, minlength=n)
        cand = np.flatnonzero(full)
        scores: np.ndarray = full[cand].astype(np.float64)
        shared = np.bincount(docs, weights=weight, minlength=n)[cand]
        speakers = np.frombuffer(self.speakers, dtype=np.int32, count=n)[cand]
        speaker = self._speaker_ids.get(user_id) if user_id else None
        if speaker is not None:
            scores[speakers == speaker] *= SAME_SPEAKER
        named = self._named(weights)
        if named and len(named) < len(self._speaker_ids):
            chosen = np.zeros(len(self._speaker_ids), dtype=bool)
            chosen[list(named)] = True
            scores[chosen[speakers]] *= NAMED_SPEAKER
        scores[np.frombuffer(self.asked, dtype=np.int8, count=n)[cand] == 1] *= ASKED
        if when is not None and when.ranged:
            ats = np.frombuffer(self.ats, dtype=np.float64, count=n)[cand]
            in_range = (ats >= when.start) & (ats < when.end)
            scores[in_range] *= IN_RANGE
            if inside:
                scores[~in_range] = 0.0
        if when is not None and when.asks_when:
            scores[np.frombuffer(self.timed, dtype=np.int8, count=n)[cand] == 1] *= TIMED_TURN
        want = min(len(cand), k * 4 + 8)
        top = np.argpartition(-scores, want - 1)[:want] if want < len(cand) else np.arange(len(cand))
        top = top[scores[top] > 0]
        top = top[np.lexsort((-top, -scores[top]))]  # best first; a tie goes to the later turn
        out: list[tuple[float, float, Turn]] = []
        for score, part, doc in zip(scores[top].tolist(), shared[top].tolist(), cand[top].tolist(), strict=True):
            turn = self.turns[doc]
            if skip(turn):
                continue
            out.append((score, part, turn))
            if len(out) >= k:
                break
        return out

    def member(self, weights: dict[str, float]) -> int | None:
        """The one speaker (by number) the query's own terms name, when they name exactly one of several."""
        named = self._named(weights)
        return next(iter(named)) if len(named) == 1 and len(self._speaker_ids) > 1 else None

    def speaker_of(self, turn: Turn) -> int:
        """The number of a turn's speaker (-1 for one not indexed)."""
        return self._speaker_ids.get(turn.user_id or f"~{turn.name}", -1)

    def _named(self, weights: dict[str, float]) -> set[int]:
        """The speakers whose names are among the query's own terms (the message's, not its context's)."""
        return set().union(*(self.names.get(t, set()) for t in weights if weights[t] >= 1.0))

    def _score(self, terms: list[str], memo: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Each term's documents and its BM25 part in each (idf times the saturated term frequency), into `memo`:
        all the terms in one pass of numpy (a message's terms are many, each posting short)."""
        if not terms:
            return
        n = len(self.turns)
        posts = [self.postings[t] for t in terms]
        sizes = np.fromiter((len(p.docs) for p in posts), dtype=np.int64, count=len(posts))
        docs = np.concatenate([np.frombuffer(p.docs, dtype=np.int32) for p in posts])
        tfs = np.concatenate([np.frombuffer(p.tfs, dtype=np.float32) for p in posts])
        lengths = np.frombuffer(self.lengths, dtype=np.float32, count=n)[docs]
        norm = K1 * (1 - B + B * lengths / (self.total / n or 1.0))
        idf = np.log(1 + (n - sizes + 0.5) / (sizes + 0.5)).astype(np.float32)
        parts = (np.repeat(idf, sizes) * tfs * (K1 + 1) / (tfs + norm)).astype(np.float32)
        ends = np.cumsum(sizes).tolist()
        for term, start, end in zip(terms, [0, *ends[:-1]], ends, strict=True):  # slices: np.split costs more
            memo[term] = (docs[start:end], parts[start:end])

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
