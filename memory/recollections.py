"""Recalled turns and how the prompt shows them: dated, with who said them and the turns around them, in a budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core.text import truncate_tokens
from memory.age import day_of
from memory.turns import Turn


@dataclass(frozen=True, slots=True)
class Recollection:
    """A turn recalled for this message, with the turns around it and how long ago it was said."""

    turn: Turn
    before: Turn | None
    after: Turn | None
    age: str
    score: float


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
