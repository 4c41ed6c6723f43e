"""Persisted shapes of conversation memory: session keys, turns, summaries."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]
SCHEMA = 1


@dataclass(frozen=True, slots=True)
class SessionKey:
    """One conversation: per (platform, channel) in groups, per (platform, user) in DMs."""

    persona: str
    platform: str
    scope: Literal["group", "dm"]
    id: str

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

    def dumps(self) -> str:
        """Serialize with the schema version."""
        data = asdict(self)
        data["v"] = SCHEMA
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes, seq: int | None = None) -> Turn:
        """Parse a stored turn; unknown fields from newer versions are ignored."""
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if seq is not None:
            known["seq"] = seq
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Summary:
    """The rolling summary of everything up to and including turn `upto`."""

    text: str = ""
    upto: int = 0


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What the character remembers about one user."""

    facts: tuple[str, ...] = field(default_factory=tuple)
