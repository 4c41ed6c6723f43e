"""Who speaks in a scene: the characters a message calls on, in turn, and when they stop.

A pure policy over plain data: it reads names and talkativeness, never a store or a platform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from persona.card import Persona
from persona.library import name_position


@dataclass(frozen=True, slots=True)
class Member:
    """One character of a scene, as turn-taking sees it."""

    id: str
    names: tuple[str, ...]  # its name and nicknames, as its card gives them
    talkativeness: float = 0.5

    @classmethod
    def of(cls, persona: Persona) -> Member:
        """The member a persona card makes."""
        return cls(persona.id, tuple(persona.triggers()), persona.card.talkativeness)


@dataclass(frozen=True, slots=True)
class Line:
    """One line said in the scene."""

    text: str
    by: str = ""  # the character who said it; "" when a person did
    to: str = ""  # the character it @s or replies to ("" when none)


def named(text: str, cast: Sequence[Member], skip: str = "") -> list[str]:
    """The characters a text names (name or nickname), in order of first mention; `skip` left out."""
    found: list[tuple[int, int, str]] = []
    for order, member in enumerate(cast):
        if member.id == skip:
            continue
        places = [p for p in (name_position(text, n) for n in member.names if n.strip()) if p >= 0]
        if places:
            found.append((min(places), order, member.id))
    return [pid for _, _, pid in sorted(found)]


def draw_one(cast: Sequence[Member], chance: float, draw: Callable[[], float]) -> str:
    """With probability `chance`, one character drawn by talkativeness ("" when none speaks up)."""
    weights = [(m.id, max(0.0, m.talkativeness)) for m in cast]
    total = sum(w for _, w in weights)
    if chance <= 0 or total <= 0 or draw() >= chance:
        return ""
    point = draw() * total
    for pid, weight in weights:
        if point < weight:
            return pid
        point -= weight
    return next(pid for pid, w in reversed(weights) if w > 0)


class Floor:
    """Turn-taking after one human message: who answers it, then who answers whom, within the bound.

    An @ or a reply to a character gives it the floor alone; characters the message names speak in
    order of mention; an unaddressed message may draw one (`may_draw`: the channel's reply chance
    allows it). A character's line may call on others by name, who then speak in turn; the last
    speaker never follows itself, and no more than `max_turns` character lines follow the message.
    """

    def __init__(self, cast: Sequence[Member], max_turns: int, line: Line,
                 chance: float = 0.0, draw: Callable[[], float] | None = None):
        self.cast = list(cast)
        self.max_turns = max_turns
        self.spoken = 0
        self.last = line.by
        ids = {m.id for m in self.cast}
        if line.to in ids:
            self.queue = [line.to]
        else:
            self.queue = named(line.text, self.cast, skip=line.by)
            if not self.queue and draw is not None:
                drawn = draw_one([m for m in self.cast if m.id != line.by], chance, draw)
                self.queue = [drawn] if drawn else []

    def next(self) -> str:
        """The character who speaks now ("" when the floor goes back to the people)."""
        while self.queue and self.spoken < self.max_turns:
            who = self.queue.pop(0)
            if who != self.last:
                return who
        return ""

    def said(self, who: str, text: str) -> None:
        """A character spoke: it counts against the bound, and those its line names are called on."""
        self.spoken += 1
        self.last = who
        for pid in named(text, self.cast, skip=who):
            if pid not in self.queue:
                self.queue.append(pid)
