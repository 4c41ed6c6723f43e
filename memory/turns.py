"""The persisted shapes of conversation memory; they live in core/turns.py (the store contracts use them)."""

from core.turns import (
    CITED_CHARS,
    CONTEXTS_KEPT,
    SCHEMA,
    TURN_CHARS,
    Cited,
    Fact,
    FactBook,
    LastContext,
    Role,
    SessionInfo,
    SessionKey,
    SessionPage,
    Summary,
    Turn,
    TurnSpan,
    parse_session,
    shown_in,
)

__all__ = [
    "CITED_CHARS", "CONTEXTS_KEPT", "SCHEMA", "TURN_CHARS", "Cited", "Fact", "FactBook", "LastContext", "Role",
    "SessionInfo", "SessionKey", "SessionPage", "Summary", "Turn", "TurnSpan", "parse_session", "shown_in",
]
