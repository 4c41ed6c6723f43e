"""The lorebook: World Info semantics (Character Card V2 `character_book`) over recent messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from core.knowledge import Passage
from core.text import estimate_tokens
from persona.card import LoreEntry

_REGEX_KEY = re.compile(r"^/(.+)/([imsux]*)$", re.S)
_ASCII_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ '\-]*[A-Za-z0-9_]$|^[A-Za-z0-9_]$")
_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "u": 0, "x": re.X}


@lru_cache(maxsize=2048)
def _compile(key: str, case_sensitive: bool) -> re.Pattern[str] | None:
    """A key as a pattern: `/regex/flags` as written; a Latin word matches whole words only."""
    flags = 0 if case_sensitive else re.I
    m = _REGEX_KEY.match(key)
    if m:
        for f in m.group(2):
            flags |= _FLAGS[f]
        try:
            return re.compile(m.group(1), flags)
        except re.error:
            return None  # a broken regex in an imported card must not break the chat
    key = key.strip()
    if not key:
        return None
    if _ASCII_WORD.match(key):
        return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", flags)
    return re.compile(re.escape(key), flags)  # CJK has no word boundaries: substring


def key_matches(key: str, text: str, case_sensitive: bool) -> bool:
    """Whether one key occurs in the scanned text."""
    pattern = _compile(key, case_sensitive)
    return bool(pattern and pattern.search(text))


def triggered(entry: LoreEntry, text: str) -> bool:
    """Primary keys (any), then the secondary keys by selective_logic when selective."""
    if not entry.enabled:
        return False
    if entry.constant:
        return True
    if not any(key_matches(k, text, entry.case_sensitive) for k in entry.keys):
        return False
    secondary = [k for k in entry.secondary_keys if k.strip()]
    if not entry.selective or not secondary:
        return True
    hits = [key_matches(k, text, entry.case_sensitive) for k in secondary]
    match entry.selective_logic:
        case "and_any":
            return any(hits)
        case "and_all":
            return all(hits)
        case "not_any":
            return not any(hits)
        case "not_all":
            return not all(hits)
    return False


def within(entry: LoreEntry, max_chapter: int | None) -> bool:
    """Whether the entry may be known under a spoiler limit (entries without a chapter always may)."""
    return max_chapter is None or entry.chapter is None or entry.chapter <= max_chapter


def scan(
    entries: Sequence[LoreEntry],
    query: str,
    recent: Sequence[str],
    depth: int,
    budget: int,
    max_chapter: int | None = None,
) -> list[Passage]:
    """Entries triggered by the message and the last `depth` messages, within `budget` tokens.

    Entries of chapters past `max_chapter` never fire. Constant entries claim the budget first,
    then higher priority, then lower insertion_order; what fits is returned before_char first,
    each group by insertion_order.
    """
    window = [*list(recent)[-depth:], query] if depth > 0 else [query]
    text = "\n".join(window)
    hits = [
        (n, e) for n, e in enumerate(entries) if e.content.strip() and within(e, max_chapter) and triggered(e, text)
    ]
    hits.sort(key=lambda p: (not p[1].constant, -p[1].priority, p[1].insertion_order, p[0]))
    kept: list[tuple[int, LoreEntry]] = []
    used = 0
    for n, entry in hits:
        cost = estimate_tokens(entry.content) + 2
        if used + cost > budget:
            continue
        kept.append((n, entry))
        used += cost
    kept.sort(key=lambda p: (p[1].position != "before_char", p[1].insertion_order, p[0]))
    return [
        Passage(entry.content.strip(), entry.comment or (entry.keys[0] if entry.keys else "constant"), "lore", float(entry.priority))
        for _, entry in kept
    ]
