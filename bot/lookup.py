"""What the recall stage asks of the knowledge side: passages, lorebook hits and scenes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from persona.card import Persona


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


class Knowledge(Protocol):
    """Retrieval over a persona's source work and card."""

    async def lookup(
        self, persona: Persona, query: str, recent: Sequence[str], max_chapter: int | None
    ) -> Lookup:
        """Passages, lore and scenes for this message, within their token budgets."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class NoKnowledge:
    """Knowledge switched off: nothing is looked up."""

    async def lookup(
        self, persona: Persona, query: str, recent: Sequence[str], max_chapter: int | None
    ) -> Lookup:
        """Nothing found."""
        return Lookup()

    async def close(self) -> None:
        """Nothing to release."""
