"""Dense recall: each conversation's turns embedded in the background, and the turns nearest a message.

It works beside the BM25 index of memory/episodes.py, which fuses the two rankings, so a paraphrase
with no word in common ("which instrument am I learning?" for "I'm learning the cello") is found.

- Turns are embedded after they are indexed, in batches, in a background task per conversation
  (one at a time in the process, so the replies' own query embeddings are not queued behind a
  backlog); a message never waits for them. Each vector goes to the side file (memory/vector_cache.py)
  and is never asked for again, in this process or the next.
- A message's own embedding is started as soon as its conversation is known and waited for at
  most `[memory] recall_dense_wait` seconds; later, BM25 answers alone for that message. While a
  message's embedding is under way, the background embedding waits between its batches: replies
  first.
- An embedder that fails (server down, refusing) logs one WARNING and leaves recall to BM25 for
  `RETRY_SECONDS`; nothing raises on the message path. It is tried again after that, and warned
  about again only once it has answered in between.
- The vectors of one conversation are compared only with that conversation's message, and only
  with the vectors of the same embedder key and dimension.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from core.background import Background
from core.config import ConfigError, KnowledgeConfig, MemoryConfig
from core.text import char_classes
from memory.knowledge.embedders import open_embedder
from memory.knowledge.embedding import Embedder
from memory.turns import SessionKey, Turn
from memory.vector_cache import VectorCache, digest

log = logging.getLogger(__name__)

QUERY_WAIT = 0.5  # seconds a message waits for its own embedding (then BM25 answers alone): the config's default
RETRY_SECONDS = 30.0  # after the embedder fails, recall is BM25 only this long
BATCH = 16  # texts per background embedding request (a message's own embedding waits for at most one)
CACHE_TURNS = 50_000  # turn vectors held in memory over all conversations (the side file keeps the rest)
MIN_Z = 2.0  # a turn must be this many standard deviations more similar than the conversation's average
DENSE_K = 8  # at most this many turns come from the dense side for each text embedded (the message, a clause)
MIN_TURNS = 8  # fewer embedded turns than this: no average to stand out from, dense stays out
CACHE_FILE = "memory-vectors.sqlite3"


class EpisodeIndex(Protocol):
    """What dense recall reads of a conversation's episode index (memory.episodes): its turns, in document order."""

    @property
    def turns(self) -> Sequence[Turn]:
        """Document i is turns[i]."""
        ...

    def __len__(self) -> int:
        """How many documents."""
        ...


def turn_text(turn: Turn) -> str:
    """What a turn is embedded as: a user's words after their name, the character's words alone."""
    return f"{turn.name}: {turn.text}" if turn.role == "user" and turn.name else turn.text


class _Vectors:
    """One conversation's vectors, row i for document i of the index they were made for."""

    def __init__(self, key: SessionKey, index: EpisodeIndex):
        self.key = key
        self.conversation = str(key)
        self.index = index  # the rows follow this index; a rebuilt one starts a new _Vectors
        self.done = 0  # documents placed (embedded, or found in the side file)
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.have = np.zeros(0, dtype=bool)
        self.total = np.zeros(0, dtype=np.float64)  # the sum of the rows, for their mean

    def place(self, start: int, rows: list[np.ndarray | None]) -> None:
        """Put the rows of documents start.. (None: no vector) and mark them done."""
        dim = next((len(r) for r in rows if r is not None), self.matrix.shape[1])
        need = start + len(rows)
        if self.matrix.shape[1] != dim or need > len(self.matrix):
            size = max(need, 2 * len(self.matrix), 64)
            matrix = np.zeros((size, dim), dtype=np.float32)
            have = np.zeros(size, dtype=bool)
            if self.matrix.shape[1] == dim:
                matrix[: len(self.matrix)] = self.matrix
                have[: len(self.have)] = self.have
            else:
                self.total = np.zeros(dim, dtype=np.float64)
            self.matrix, self.have = matrix, have
        for i, row in enumerate(rows):
            if row is not None:
                self.matrix[start + i] = row
                self.have[start + i] = True
                self.total += row
        self.done = need

    def standing(self, query: np.ndarray) -> np.ndarray | None:
        """How far each document's similarity to the query stands above the rest, in standard deviations.

        Similarity is the cosine after taking the conversation's mean vector out of both sides: many
        embedders (a chat model's pooled states above all) put every text in one narrow cone, where
        raw cosines tell little apart; centred, what a turn says beyond the usual chat shows. None
        below MIN_TURNS embedded documents, or for a query of another dimension.
        """
        n = self.done
        valid = self.have[:n]
        count = int(valid.sum())
        if count < MIN_TURNS or self.matrix.shape[1] != len(query):
            return None
        rows = self.matrix[:n]
        mean = (self.total / count).astype(np.float32)
        dots = rows @ np.stack([query, mean], axis=1)  # each row against the query and the mean
        # |d - m|^2 = |d|^2 - 2 d.m + |m|^2, rows being unit vectors; the query's own norm scales all alike
        spread = np.sqrt(np.maximum(1.0 - 2.0 * dots[:, 1] + float(mean @ mean), 1e-12))
        sims = (dots[:, 0] - dots[:, 1] - float(query @ mean) + float(mean @ mean)) / spread
        pool = sims[valid]
        z = (sims - float(pool.mean())) / (float(pool.std()) or 1.0)
        z[~valid] = -np.inf
        return z


class DenseRecall:
    """Turn embeddings per conversation (made in the background, kept in a side file) and nearest-turn search."""

    def __init__(
        self,
        embedder: Embedder,
        cache: VectorCache,
        background: Background,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: float = QUERY_WAIT,
        cache_turns: int = CACHE_TURNS,
        owns_embedder: bool = True,
    ):
        self.embedder = embedder
        self.owns_embedder = owns_embedder  # False: shared with knowledge; whoever opened it closes it
        self.cache = cache
        self.background = background
        self.clock = clock
        self.wait = wait
        self.cache_turns = cache_turns
        self.dim: int | None = cache.dimension(embedder.key)
        self._states: OrderedDict[SessionKey, _Vectors] = OrderedDict()
        self._busy = asyncio.Lock()
        self._asking: set[asyncio.Task[list[list[float]]]] = set()  # messages' embeddings under way
        self._down_until = 0.0
        self._warned = False

    def track(self, key: SessionKey, index: EpisodeIndex) -> None:
        """Follow the conversation's index; embed its new documents in the background."""
        state = self._states.get(key)
        if state is None or state.index is not index:
            state = self._states[key] = _Vectors(key, index)
        self._states.move_to_end(key)
        self._evict()
        if state.done < len(index) and not self.down:
            self.background.spawn(self._fill(state), name=f"embed turns of {key}", key=f"dense:{key}")

    def warm_up(self) -> None:
        """Load the model (or reach the server) in the background, so the first turns overheard are embedded at once."""
        self.background.spawn(self._warm(), name="warm the memory embedder", key="dense:warm")

    async def _warm(self) -> None:
        try:
            await asyncio.to_thread(self.embedder.warm)
        except Exception as exc:  # down at start: BM25 alone for now, said once
            self._failed(exc)

    def forget(self, key: SessionKey) -> None:
        """Drop the conversation's vectors from memory (its index was dropped); the side file keeps them."""
        self._states.pop(key, None)

    def backlog(self) -> int:
        """Turns indexed in this process and not yet embedded, over all conversations followed."""
        return sum(len(state.index) - state.done for state in self._states.values())

    def embedded(self, key: SessionKey) -> int:
        """How many of the conversation's indexed turns have a vector in memory."""
        state = self._states.get(key)
        return int(state.have[: state.done].sum()) if state is not None else 0

    @property
    def down(self) -> bool:
        """Whether the embedder failed lately (recall is BM25 only until RETRY_SECONDS have passed)."""
        return self.clock() < self._down_until

    def start(self, key: SessionKey, message: str, clauses: Sequence[str] = ()) -> asyncio.Task[list[list[float]]] | None:
        """Start embedding the message and its `clauses` (one request), when the conversation has vectors to compare them with."""
        state = self._states.get(key)
        if state is None or int(state.have.sum()) < MIN_TURNS or self.down or not self._suits(message):
            log.debug("memory: %s not embedded (%d turns embedded)", "message" if self._suits(message) else "a CJK message",
                      int(state.have.sum()) if state is not None else 0)
            return None
        texts = [message, *clauses]
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.embedder.encode, texts, len(texts)))
        task.add_done_callback(_observed)
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)
        return task

    async def nearest(
        self, key: SessionKey, index: EpisodeIndex, pending: asyncio.Task[list[list[float]]] | None,
        skip: Callable[[Turn], bool], k: int,
    ) -> list[list[tuple[float, Turn]]]:
        """For each text `pending` embeds, the turns nearest it (at most `k` and DENSE_K), best first, with their standing."""
        if pending is None:
            return []
        done, _ = await asyncio.wait({pending}, timeout=self.wait)
        if not done:
            log.debug("memory: the message's embedding took over %.1f s, BM25 alone", self.wait)
            return []
        try:
            queries = [np.asarray(v, dtype=np.float32) for v in pending.result()]
        except Exception as exc:  # the embedder failed: BM25 answers, and says so once
            self._failed(exc)
            return []
        if not queries:
            return []
        self._answered(len(queries[0]))
        state = self._states.get(key)
        if state is None or state.index is not index:
            return []
        found = [self._nearest(state, index.turns, query, skip, min(k, DENSE_K)) for query in queries]
        log.debug("memory: by meaning, %s turns for %d texts (%d of %d turns embedded)",
                  "+".join(str(len(f)) for f in found), len(queries), self.embedded(key), len(index))
        return found

    def _nearest(self, state: _Vectors, turns: Sequence[Turn], query: np.ndarray, skip: Callable[[Turn], bool],
                 k: int) -> list[tuple[float, Turn]]:
        n = state.done
        z = state.standing(query)
        if z is None:
            return []
        want = min(n, k * 4 + 8)
        top = np.argpartition(-z, want - 1)[:want] if want < n else np.arange(n)
        out: list[tuple[float, Turn]] = []
        for doc in sorted(top.tolist(), key=lambda d: -z[d]):
            if z[doc] < MIN_Z:
                break
            if not skip(turns[doc]):
                out.append((float(z[doc]), turns[doc]))
                if len(out) >= k:
                    break
        return out

    async def close(self) -> None:
        """Close the side file and the embedder (the background tasks are the app's to end first)."""
        self._states.clear()
        self.cache.close()
        if self.owns_embedder:
            self.embedder.close()

    def _suits(self, message: str) -> bool:
        """The packaged English MiniLM is left out for Chinese messages, as knowledge's `dense_weight = "auto"` does."""
        return not (self.embedder.is_default and char_classes(message)[0] > 0)

    async def _fill(self, state: _Vectors) -> None:
        """Place every document's vector: from the side file when it has it, else embedded (and kept there)."""
        async with self._busy:
            try:
                await self._fill_locked(state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)

    async def _fill_locked(self, state: _Vectors) -> None:
        key, conversation, turns = self.embedder.key, state.conversation, state.index.turns
        kept = await asyncio.to_thread(self.cache.load, key, conversation)
        whole = state.done == 0  # every document's digest is seen here: the file can be pruned after
        digests: list[bytes] = []
        while state.done < len(turns) and self._states.get(state.key) is state:
            start = state.done
            span = [turn_text(t) for t in turns[start : start + 8 * BATCH]]  # the index may grow meanwhile
            named = [digest(text) for text in span]
            texts = dict(zip(named, span, strict=True))
            missing = [d for d in texts if d not in kept]
            for at in range(0, len(missing), BATCH):
                while self._asking:  # a message waits for its own embedding: it goes first
                    await asyncio.wait(set(self._asking))
                chunk = missing[at : at + BATCH]
                vectors = await asyncio.to_thread(self.embedder.encode, [texts[d] for d in chunk], BATCH)
                if not self._answered(len(vectors[0])):
                    return  # another dimension: everything is embedded again
                rows = [(d, np.asarray(v, dtype=np.float32)) for d, v in zip(chunk, vectors, strict=True)]
                await asyncio.to_thread(self.cache.save, key, conversation, rows)
                kept.update(rows)
            if self._states.get(state.key) is not state:
                return
            state.place(start, [kept.get(d) for d in named])
            digests += named
        if whole and state.done == len(turns) and len(kept) > len(set(digests)):
            # the file holds turns forgotten since (a reset, the archive's bound)
            await asyncio.to_thread(self.cache.prune, key, conversation, set(digests))

    def _answered(self, dim: int) -> bool:
        """Note that the embedder answered; False when it answered another dimension than before."""
        self._warned = False
        if self.dim == dim:
            return True
        if self.dim is not None:
            log.warning("memory: %s now answers %d dimensions (was %d); turns are embedded again",
                        self.embedder.name, dim, self.dim)
        self.cache.claim(self.embedder.key, self.embedder.name, dim)
        changed = self.dim is not None
        self.dim = dim
        if changed:
            self._states.clear()
        return not changed

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self.clock() + RETRY_SECONDS
        if not self._warned:
            self._warned = True
            log.warning("memory: dense recall failed, BM25 only (retried every %.0f s): %s", RETRY_SECONDS, exc)

    def _evict(self) -> None:
        total = sum(s.done for s in self._states.values())
        while total > self.cache_turns and len(self._states) > 1:
            _, state = self._states.popitem(last=False)
            total -= state.done


def _observed(task: asyncio.Task[list[list[float]]]) -> None:
    """Retrieve a query embedding's failure even when no one waited for it (it came too late)."""
    if not task.cancelled():
        task.exception()


def open_dense(memory: MemoryConfig, knowledge: KnowledgeConfig, data_dir: Path, background: Background,
               clock: Callable[[], float] = time.monotonic, embedder: Embedder | None = None) -> DenseRecall | None:
    """Dense recall as `[memory] recall_dense` and the `[knowledge]` embedder say, or None (BM25 alone).

    `embedder`: the one knowledge uses too (one model in memory, one connection pool); else its own."""
    if memory.recall_dense is False or memory.recall_tokens == 0:
        return None
    shared = embedder is not None
    embedder = embedder or open_embedder(knowledge)
    if embedder is None:
        if memory.recall_dense is True:
            raise ConfigError("[memory] recall_dense = true needs an embedder: set [knowledge] embedding_url + "
                              'embedding_model or embedding_path, or recall_dense = "auto"')
        return None
    return DenseRecall(embedder, VectorCache(data_dir / CACHE_FILE), background, clock=clock, wait=memory.recall_dense_wait,
                       owns_embedder=not shared)
