"""Persisted shapes of conversation memory: session keys, turns, summaries, facts, the last context."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from core.conversation import Conversation, Platform, Scope

Role = Literal["user", "assistant"]
SCHEMA = 1
TURN_CHARS = 16_000  # text kept of one stored turn; messages and replies are cut shorter before this
CONTEXTS_KEPT = 20  # what the last this many replies of a conversation were given (/why, the console)
CITED_CHARS = 400  # text kept of each thing a reply was given (a passage, a memory)


@dataclass(frozen=True, slots=True)
class SessionKey:
    """One persona's memory of one conversation (each persona keeps its own history there)."""

    persona: str
    platform: Platform
    scope: Scope
    id: str

    @classmethod
    def of(cls, persona: str, conversation: Conversation) -> SessionKey:
        """The persona's session in that conversation."""
        return cls(persona, conversation.platform, conversation.scope, conversation.id)

    @property
    def conversation(self) -> Conversation:
        """The conversation this session belongs to."""
        return Conversation(self.platform, self.scope, self.id)

    def __str__(self) -> str:
        return f"{self.persona}:{self.platform}:{self.scope}:{self.id}"


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message; `seq` is assigned by the store, increasing within a session."""

    role: Role
    text: str
    user_id: str = ""
    name: str = ""
    addressed: bool = True
    at: float = 0.0
    message_id: str = ""
    seq: int = 0
    partial: bool = False
    # in a scene: the persona id of the character who said this line (another character than the one
    # whose memory holds it: a named speaker, role "user"); "" for what people say
    speaker: str = ""

    def dumps(self) -> str:
        """Serialize with the schema version; text past TURN_CHARS is cut, ending in "…"."""
        data: dict[str, object] = {name: getattr(self, name) for name in _TURN_FIELDS}  # all plain values
        if not self.speaker:
            del data["speaker"]  # most turns: the same bytes as before scenes
        data["text"] = self.kept_text
        data["v"] = SCHEMA
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @property
    def kept_text(self) -> str:
        """The text as stored: cut past TURN_CHARS, ending in "…"."""
        return self.text if len(self.text) <= TURN_CHARS else self.text[: TURN_CHARS - 1] + "…"

    def stored(self, seq: int) -> Turn:
        """The turn as `loads(dumps())` reads it back, numbered `seq`."""
        return replace(self, text=self.kept_text, seq=seq)

    @classmethod
    def loads(cls, raw: str | bytes, seq: int | None = None) -> Turn:
        """Parse a stored turn; unknown fields from newer versions are ignored."""
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if seq is not None:
            known["seq"] = seq
        return cls(**known)


_TURN_FIELDS = tuple(Turn.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Summary:
    """The rolling summary of everything up to and including turn `upto`."""

    text: str = ""
    upto: int = 0


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing the character knows about a user, with where and when it was learned."""

    id: int
    text: str
    at: float = 0.0  # when it was said (0: unknown, carried over from rp:v1)
    conversation: str = ""  # "group:<id>" or "dm:<id>" where it was learned ("": anywhere, from rp:v1)
    message_id: str = ""  # the platform's id of the message it came from
    seq: int = 0  # that message's turn in the conversation


def shown_in(learned: str, here: str, shared: bool) -> bool:
    """Whether a fact learned in conversation `learned` may be shown in `here` ("group:<id>", "dm:<id>").

    Its own conversation; when facts are shared, other conversations too, except that what someone
    said in a private chat never reaches a group (their private chat shows them only to themselves).
    A fact from rp:v1 kept no origin and may have been said in private: private chats alone show it.
    """
    if learned == here:
        return True
    private_here = here.startswith("dm:")
    if not learned:
        return private_here
    return shared and (private_here or not learned.startswith("dm:"))


@dataclass(frozen=True, slots=True)
class FactBook:
    """Every fact about one user (per persona and platform), and how far each conversation was read."""

    facts: tuple[Fact, ...] = ()
    noted: dict[str, int] = field(default_factory=dict)  # conversation -> last seq read for facts
    # conversation -> timeline and profile items (memory/profiles.py, "<seq>:<part>") the user had forgotten
    forgotten: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def visible(self, conversation: str, shared: bool) -> list[Fact]:
        """The facts shown in `conversation` (see `shown_in`)."""
        return [f for f in self.facts if shown_in(f.conversation, conversation, shared)]

    def dumps(self) -> str:
        """JSON for the store."""
        data: dict[str, object] = {"v": 2, "facts": [asdict(f) for f in self.facts], "noted": self.noted}
        if self.forgotten:
            data["forgotten"] = {k: list(v) for k, v in self.forgotten.items()}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes | None) -> FactBook:
        """Parse a stored book (empty when there is none)."""
        if not raw:
            return cls()
        data = json.loads(raw)
        facts = tuple(
            Fact(**{k: f[k] for k in Fact.__dataclass_fields__ if k in f})
            for f in data.get("facts") or [] if isinstance(f, dict)
        )
        noted = data.get("noted") or {}
        forgotten = data.get("forgotten") or {}
        return cls(facts, {str(k): int(v) for k, v in noted.items()} if isinstance(noted, dict) else {},
                   {str(k): tuple(str(i) for i in v) for k, v in forgotten.items() if isinstance(v, list)}
                   if isinstance(forgotten, dict) else {})


@dataclass(frozen=True, slots=True)
class TurnSpan:
    """Stored turns newer than some seq, from the archive and the window, oldest first.

    `floor`: turns up to this seq were forgotten (a reset, or an idle conversation expiring);
    `last`: the newest seq handed out. Either moving unexpectedly means an index must be rebuilt.
    """

    floor: int
    last: int
    turns: tuple[Turn, ...] = ()


@dataclass(frozen=True, slots=True)
class Cited:
    """One thing the last reply was given: a memory, a fact, a lore entry or a passage."""

    kind: str  # "memory" | "fact" | "lore" | "passage" | "scene" | "summary"
    text: str
    source: str = ""  # who said it and when, the lore entry's name, the passage's source


@dataclass(frozen=True, slots=True)
class LastContext:
    """What one reply was given, for `/why` and the console: what it cited and the prompt's tokens per section."""

    at: float = 0.0
    user_id: str = ""
    name: str = ""
    message: str = ""
    mode: str = ""
    cited: tuple[Cited, ...] = ()
    seq: int = 0  # the reply's turn (0: unknown, or stored while the store was away)
    tokens: tuple[tuple[str, int], ...] = ()  # (section, tokens as the server counts them), in prompt order

    def dumps(self) -> str:
        """JSON for the store (each cited text cut to CITED_CHARS)."""
        # by hand, not `asdict` (which deep-copies every value): one is written for every reply
        data: dict[str, object] = {name: getattr(self, name) for name in _CONTEXT_FIELDS}
        data["cited"] = [{"kind": c.kind, "text": c.text if len(c.text) <= CITED_CHARS else c.text[: CITED_CHARS - 1] + "…",
                          "source": c.source} for c in self.cited]
        data["v"] = 3
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> LastContext:
        """Parse a stored record; unknown fields are ignored."""
        data = json.loads(raw)
        cited = tuple(
            Cited(**{k: c[k] for k in Cited.__dataclass_fields__ if k in c})
            for c in data.get("cited", []) if isinstance(c, dict)
        )
        tokens = tuple((str(t[0]), int(t[1])) for t in data.get("tokens") or [] if isinstance(t, list) and len(t) == 2)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("cited", "tokens")}
        return cls(**known, cited=cited, tokens=tokens)


_CONTEXT_FIELDS = tuple(LastContext.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One stored session as a list shows it: when it was last active and how many turns it took."""

    key: SessionKey
    active: float
    turns: int


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A page of sessions, most recently active first, with the totals over every session."""

    total: int
    turns: int
    items: tuple[SessionInfo, ...] = ()


def parse_session(text: str) -> SessionKey | None:
    """The SessionKey written as `str(key)`, or None when `text` is not one."""
    parts = text.split(":", 3)
    if len(parts) != 4 or parts[2] not in ("group", "dm") or not all(parts):
        return None
    persona, platform, scope, ident = parts
    return SessionKey(persona, platform, scope, ident)  # type: ignore[arg-type]
