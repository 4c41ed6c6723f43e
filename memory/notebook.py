"""A conversation's notebook: each member's timeline and profile items (memory/profiles.py), searchable.

It follows the conversation's episode index the way dense recall does: every turn the index takes
is read for items as it comes (in the background for what the character overhears), and a rebuilt
index starts a new notebook. Items are searched like turns (BM25 over their words, the member's
name among them), dated by when they happened, so "in May" finds what happened in May even when
it was told in June. Items a member had `/forget` remove stay out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

from memory.episode_index import EpisodeIndex
from memory.profiles import Item, items_of, line
from memory.terms import parts
from memory.timeframe import Frame
from memory.turns import Turn

MIN_SHARED = 1.0  # query weight an item must share with the message (its member's name counts)
KEEP_SHARE = 0.25  # items scoring under this share of the best one are left out
EVENT = 1.2  # for a "when" question, an event (it carries its date) counts more than a profile line


def read_items(turns: Sequence[Turn]) -> list[Item]:
    """The items of these turns, in order (members' turns only)."""
    return [item for t in turns if t.role == "user" for item in items_of(t.seq, t.user_id, t.name, t.text, t.at)]


class Notebook:
    """The items of one conversation's turns, in the order they were said."""

    def __init__(self, index: EpisodeIndex):
        self.index = index  # the episode index it follows; a rebuilt one starts a new notebook
        self.read = 0  # documents of the index read for items
        self.reading = False  # a backlog is being read in the background
        self.items: list[Item] = []
        self._search = EpisodeIndex(near_seconds=-1.0)  # item i is document i, a "turn" said by its member when it happened

    def __len__(self) -> int:
        return len(self.items)

    @property
    def behind(self) -> int:
        """Turns of the index not read yet."""
        return len(self.index.turns) - self.read

    def catch_up(self) -> int:
        """Read the turns the index took since the last call, here and now; how many items they held.

        Nothing while a backlog is read in the background (`read_backlog`): that reading takes these too.
        """
        if self.reading:
            return 0
        turns = self.index.turns[self.read :]
        self.read += len(turns)
        return self._add(read_items(turns))

    async def read_backlog(self, slice_turns: int) -> None:
        """Read every turn not read yet, a slice at a time in a worker thread (the event loop only adds the items)."""
        if self.reading:
            return
        self.reading = True
        try:
            while self.behind:
                turns = self.index.turns[self.read : self.read + slice_turns]
                items = await asyncio.to_thread(read_items, turns)
                self.read += len(turns)
                self._add(items)
        finally:
            self.reading = False

    def _add(self, items: Sequence[Item]) -> int:
        for item in items:
            self.items.append(item)
            self._search.add([Turn("user", item.text, item.user_id, item.name, False, item.when, seq=len(self.items))])
        return len(items)

    def of(self, user_id: str) -> list[Item]:
        """A member's items, oldest first."""
        return [item for item in self.items if item.user_id == user_id]

    def search(
        self, weights: dict[str, float], message: str, when: Frame, k: int,
        hidden: Callable[[Item], bool], forgotten: Collection[str] = (),
    ) -> list[Item]:
        """The items best matching the message (its whole and its parts, in turns), at most `k`, best first."""
        def skip(doc: Turn) -> bool:
            item = self.items[doc.seq - 1]
            return item.ident in forgotten or hidden(item)

        lists = []
        for query in [weights, *parts(message, weights, list(self._search.names))]:
            found = [(score * (EVENT if when.asks_when and self.items[t.seq - 1].kind == "event" else 1.0), t)
                     for score, shared, t in self._search.search(query, k, skip, when=when) if shared >= MIN_SHARED]
            found.sort(key=lambda hit: -hit[0])
            lists.append([t for score, t in found if score >= found[0][0] * KEEP_SHARE] if found else [])
        out: list[Item] = []
        seen: set[int] = set()
        for rank in range(max((len(hits) for hits in lists), default=0)):
            for hits in lists:
                if rank < len(hits) and hits[rank].seq not in seen:
                    seen.add(hits[rank].seq)
                    out.append(self.items[hits[rank].seq - 1])
        return out[:k]


_HEADING = {"zh": "群友说过的自己的事（时间线与喜好）", "en": "What members told of themselves (timelines and profiles)"}


def heading(language: str) -> str:
    """The title of the timelines and profiles block, in the persona's language."""
    return _HEADING["zh" if language.lower().startswith("zh") else "en"]


def render(items: Sequence[Item], budget: int, count: Callable[[str], int], language: str,
           hidden: Collection[int] = ()) -> tuple[str, list[Item]]:
    """The items within `budget` tokens, best first while they fit, shown by member and in the order they happened.

    Items from turns in `hidden` (shown whole elsewhere in the prompt) are left out.
    """
    used = 0
    chosen: list[tuple[Item, str]] = []
    for item in items:
        if item.seq in hidden:
            continue
        text = line(item, language)
        cost = count(text) + 1
        if used + cost <= budget:
            chosen.append((item, text))
            used += cost
    chosen.sort(key=lambda pair: (pair[0].name, pair[0].when, pair[0].seq, pair[0].part))
    return "\n".join(text for _, text in chosen), [item for item, _ in chosen]
