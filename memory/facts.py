"""Facts that stay true: each candidate from extraction adds, updates, deletes or leaves a fact."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from core.text import lexical_tokens
from memory.turns import Fact, FactBook, SessionKey, Turn

OpKind = Literal["add", "update", "delete"]
MAX_OPS = 5
MAX_FACT_CHARS = 120


@dataclass(frozen=True, slots=True)
class FactOp:
    """One decision of the extraction: `number` is the fact's number as the model was shown it."""

    op: OpKind
    text: str = ""
    number: int = 0


def conversation_of(key: SessionKey) -> str:
    """How a conversation is named inside a user's facts: "group:<id>" or "dm:<id>"."""
    return key.conversation.place


def numbered(facts: Sequence[Fact]) -> str:
    """Facts as the numbered list the model (and `/memory`) shows: "1. ..." per line."""
    return "\n".join(f"{i}. {f.text}" for i, f in enumerate(facts, start=1))


def _number(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*#?\d{1,4}\s*", value):
        return int(value.strip().lstrip("#"))
    return 0


def parse_ops(raw: str) -> list[FactOp]:
    """The operations in a model answer: a JSON array of {"op", "fact", "id"} objects or plain strings.

    Code fences and chatter around the array are tolerated; anything malformed is skipped, so a
    garbled answer changes nothing.
    """
    match = re.search(r"\[.*\]", raw, re.S)
    if not match:
        return []
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    if not isinstance(items, list):
        return []
    out: list[FactOp] = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(FactOp("add", item.strip()[:MAX_FACT_CHARS]))
            continue
        if not isinstance(item, dict):
            continue
        kind = str(item.get("op") or item.get("action") or "add").strip().lower()
        text = item.get("fact", item.get("text", item.get("content", "")))
        text = text.strip()[:MAX_FACT_CHARS] if isinstance(text, str) else ""
        number = _number(item.get("id", item.get("number", item.get("n"))))
        if kind in ("add", "new") and text:
            out.append(FactOp("add", text))
        elif kind in ("update", "replace", "change", "edit") and text:
            out.append(FactOp("update", text, number))
        elif kind in ("delete", "remove", "forget") and number:
            out.append(FactOp("delete", "", number))
    return out[:MAX_OPS]


def _same(a: str, b: str) -> bool:
    return re.sub(r"\W+", "", a.lower()) == re.sub(r"\W+", "", b.lower())


def source_turn(text: str, said: Sequence[Turn]) -> Turn | None:
    """The message a fact most likely came from: the one sharing the most words with it."""
    want = set(lexical_tokens(text))
    best: tuple[int, int] = (0, -1)
    for i, turn in enumerate(said):
        score = len(want & set(lexical_tokens(turn.text)))
        if score >= best[0]:
            best = (score, i)
    return said[best[1]] if said and best[1] >= 0 else None


def apply_ops(
    book: FactBook,
    ops: Sequence[FactOp],
    shown: Sequence[Fact],
    said: Sequence[Turn],
    conversation: str,
    limit: int,
    shared: bool,
) -> FactBook:
    """The book after the operations, read as decisions about the facts the model was `shown`.

    Numbers refer to `shown`; a fact that changed meanwhile (deleted elsewhere) is left alone. The
    conversation's read mark moves past `said`. Past `limit` facts (in this conversation, or in all
    when shared) the oldest go.
    """
    facts = list(book.facts)
    ids = {f.id for f in facts}
    next_id = max(ids, default=0) + 1

    def sourced(fact: Fact, text: str) -> Fact:
        """The fact with `text`, dated and placed by the message it most likely came from."""
        turn = source_turn(text, said)
        if turn is None:
            return replace(fact, text=text)
        return replace(fact, text=text, at=turn.at, message_id=turn.message_id, seq=turn.seq)

    for op in ops:
        target = shown[op.number - 1] if 1 <= op.number <= len(shown) else None
        if target is not None and target.id not in ids:
            continue  # already gone: the decision was about a fact that is no longer there
        if op.op == "delete":
            if target is not None:
                facts = [f for f in facts if f.id != target.id]
                ids.discard(target.id)
            continue
        visible = [f for f in facts if shared or f.conversation in ("", conversation)]
        if any(_same(f.text, op.text) for f in visible):
            continue  # already known
        if op.op == "update" and target is not None:
            facts = [sourced(f, op.text) if f.id == target.id else f for f in facts]
            continue
        facts.append(sourced(Fact(next_id, op.text, conversation=conversation), op.text))
        ids.add(next_id)
        next_id += 1
    scoped = [f for f in facts if shared or f.conversation == conversation]
    if limit >= 0 and len(scoped) > limit:
        drop = {f.id for f in sorted(scoped, key=lambda f: (f.at, f.id))[: len(scoped) - limit]}
        facts = [f for f in facts if f.id not in drop]
    noted = dict(book.noted)
    if said:
        noted[conversation] = max(noted.get(conversation, 0), max(t.seq for t in said))
    return FactBook(tuple(facts), noted)


def forget(book: FactBook, targets: Sequence[Fact]) -> FactBook:
    """The book without these facts (matched by id)."""
    drop = {f.id for f in targets}
    return FactBook(tuple(f for f in book.facts if f.id not in drop), dict(book.noted))
