"""The typed record that flows through the pipeline, and the stage contract."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.images import Image
from core.knowledge import Passage
from core.llm import ChatMessage
from core.messages import Incoming, Mode, Reply
from memory.profiles import Item
from memory.recollections import Recollection
from memory.turns import Fact, SessionKey, Summary, Turn
from persona.card import Persona

Sink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Per-channel choices, persisted in the store."""

    persona: str = ""
    voice: bool | None = None
    max_chapter: int | None = None
    spoilers_off: bool = False
    chance: float | None = None
    bots: bool | None = None
    initiative: bool = False
    scene: tuple[str, ...] = ()  # the characters of a scene here (Discord's /scene add), by persona id

    @classmethod
    def parse(cls, raw: dict[str, str]) -> ChannelSettings:
        """From the store's string map (unknown or malformed entries are ignored)."""

        def flag(v: str | None) -> bool | None:
            return None if v is None else v in ("1", "true", "on")

        def num(v: str | None, kind: type[int] | type[float]) -> int | float | None:
            try:
                return None if v is None else kind(v)
            except ValueError:
                return None

        spoilers_off = raw.get("max_chapter") == "off"
        chapter = None if spoilers_off else num(raw.get("max_chapter"), int)
        chance = num(raw.get("chance"), float)
        return cls(
            persona=raw.get("persona", ""),
            voice=flag(raw.get("voice")),
            max_chapter=int(chapter) if chapter is not None else None,
            spoilers_off=spoilers_off,
            chance=float(chance) if chance is not None else None,
            bots=flag(raw.get("bots")),
            initiative=flag(raw.get("initiative")) or False,
            scene=tuple(dict.fromkeys(p for p in raw.get("scene", "").split(",") if p)),
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message's way through the pipeline; each stage returns an updated copy."""

    incoming: Incoming
    persona: Persona
    session: SessionKey
    settings: ChannelSettings
    text: str
    sink: Sink | None = None
    images: tuple[Image, ...] = ()  # pictures the model will see with the message (never stored)
    arrived: float = 0.0  # monotonic time the message arrived (its wait, and max_queue_seconds, count from here)
    on_sent: Callable[[], None] | None = None  # told when its model request leaves the queue (its wait is over)
    history: tuple[Turn, ...] = ()
    unsummarized: tuple[Turn, ...] = ()
    summary: Summary = field(default_factory=Summary)
    facts: tuple[str, ...] = ()  # as the prompt shows them (with their age)
    passages: tuple[Passage, ...] = ()
    lore: tuple[Passage, ...] = ()
    scenes: tuple[Passage, ...] = ()
    prompt: tuple[ChatMessage, ...] = ()
    sections: tuple[tuple[str, int], ...] = ()  # the prompt's tokens per section (system, turns, lore …), for /why
    draft: str = ""
    mode: Mode = "model"
    partial: bool = False  # the model stopped mid-reply; the whole sentences so far are the reply
    heard: bool = False  # the model answered, though its reply was unusable and a line of the card replaced it
    reply: Reply | None = None
    stored: tuple[Turn, ...] = ()  # the conversation's stored window, as recall read it
    fact_records: tuple[Fact, ...] = ()  # the user's facts shown here, in the order `facts` has them
    facts_noted: int = 0  # the user's turns up to this seq were already read for facts
    memories: tuple[Recollection, ...] = ()  # older turns recalled for this message, best first
    recalled: tuple[Recollection, ...] = ()  # those of them the prompt holds
    notes: tuple[Item, ...] = ()  # members' timeline and profile items matching the message, best first
    forgotten: frozenset[str] = frozenset()  # items (their ident) members had forgotten here: no earlier note keeps one


Stage = Callable[[Exchange], Awaitable[Exchange | None]]
