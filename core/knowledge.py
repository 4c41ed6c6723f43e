"""What the recall stage asks of the knowledge side: passages, lorebook hits and scenes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from core.text import estimate_tokens

# The character knowledge is looked up for: the layer above names its own type (persona.card.Persona),
# so core names nothing above it.
Character = TypeVar("Character", contravariant=True)


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of knowledge shown to the model (source text, lore entry or scene)."""

    text: str
    source: str = ""
    kind: str = "source"
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Lookup:
    """Everything knowledge found for one message."""

    passages: tuple[Passage, ...] = ()
    lore: tuple[Passage, ...] = ()
    scenes: tuple[Passage, ...] = ()


class Knowledge(Protocol[Character]):
    """Retrieval over a persona's source work and card."""

    async def search(self, persona: Character, query: str, max_chapter: int | None) -> tuple[Passage, ...]:
        """The source passages for a question: the part of `lookup` that needs nothing but the question."""
        ...

    async def lookup(
        self, persona: Character, query: str, recent: Sequence[str], max_chapter: int | None,
        passages: tuple[Passage, ...] | None = None,
    ) -> Lookup:
        """Passages, lore and scenes for this message, within their token budgets (`passages` found by
        `search` already are not searched again)."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class NoKnowledge:
    """Knowledge switched off: nothing is looked up."""

    async def search(self, persona: object, query: str, max_chapter: int | None) -> tuple[Passage, ...]:
        """Nothing found."""
        return ()

    async def lookup(
        self, persona: object, query: str, recent: Sequence[str], max_chapter: int | None,
        passages: tuple[Passage, ...] | None = None,
    ) -> Lookup:
        """Nothing found."""
        return Lookup()

    async def close(self) -> None:
        """Nothing to release."""


def pack(items: Sequence[Passage], budget: int, count: Callable[[str], int] = estimate_tokens) -> list[Passage]:
    """Passages in rank order that fit the token budget together (each costs its tokens and a separator)."""
    out, used = [], 0
    for p in items:
        cost = count(p.text) + 2
        if used + cost <= budget:
            out.append(p)
            used += cost
    return out
