"""Conversation records in xtuner's format (or OpenAI messages), the persona's system prompt, and a
deduplicating JSONL writer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from persona.card import Persona
from persona.prompt import stable_prompt

Record = dict[str, list[dict[str, str]]]
TURN_KEYS = frozenset({"system", "input", "output"})
ROLES = frozenset({"system", "user", "assistant"})
FORMATS = ("xtuner", "messages")


def system_prompt(persona: Persona) -> str:
    """The system prompt the bot serves with (card prompt, description, personality, scenario).

    The example dialogue the bot adds at serving time is left out: it would fill most of max_length.
    """
    return stable_prompt(persona, example_budget=0)


def conversation(system: str, pairs: Sequence[tuple[str, str]]) -> Record:
    """One record: `system` on the first turn only, then (input, output) turns."""
    turns: list[dict[str, str]] = []
    for i, (question, answer) in enumerate(pairs):
        turn = {"system": system} if i == 0 and system else {}
        turn.update(input=question, output=answer)
        turns.append(turn)
    return {"conversation": turns}


def to_messages(record: Record) -> Record:
    """The same conversation as OpenAI messages (LLaMA-Factory's sharegpt/openai loaders, ms-swift).

    A pretraining chunk (no system, no input) becomes one assistant message: ms-swift's pretraining shape.
    """
    turns = record["conversation"]
    messages: list[dict[str, str]] = []
    if turns and turns[0].get("system"):
        messages.append({"role": "system", "content": turns[0]["system"]})
    pretrain = len(turns) == 1 and not turns[0].get("input") and not turns[0].get("system")
    for turn in turns:
        if not pretrain:
            messages.append({"role": "user", "content": turn.get("input", "")})
        messages.append({"role": "assistant", "content": turn["output"]})
    return {"messages": messages}


def turns_of(value: Any) -> list[dict[str, str]]:
    """The conversation turns of a record in either format (the messages format converted back)."""
    if isinstance(value, dict) and "messages" in value:
        turns: list[dict[str, str]] = []
        pending: dict[str, str] = {}
        for m in value["messages"]:
            role, content = m["role"], m["content"]
            if role == "system":
                pending["system"] = content
            elif role == "user":
                pending["input"] = content
            else:
                turns.append({**pending, "output": content})
                pending = {}
        return turns
    return list(value.get("conversation", [])) if isinstance(value, dict) else []


def record_key(record: Record) -> str:
    """A hash of the turns' inputs and outputs (whitespace-normalized): equal keys are duplicates."""
    parts = []
    for turn in turns_of(record):
        parts.append(" ".join(str(turn.get("input", "")).split()))
        parts.append(" ".join(str(turn.get("output", "")).split()))
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


def text_key(text: str) -> str:
    """A stable id for a piece of source text (resume state)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class JsonlWriter:
    """Appends records to a JSONL file, skipping any already in it (so reruns never duplicate).

    Records are given in xtuner's format and written in `fmt`: "xtuner" or "messages".
    """

    def __init__(self, path: Path, append: bool = True, fmt: str = "xtuner"):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.path = path
        self.fmt = fmt
        self.written = 0
        self.skipped = 0
        self._seen: set[str] = set()
        if append and path.is_file():
            _drop_torn_line(path)
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    self._seen.add(record_key(json.loads(line)))
                except (ValueError, AttributeError, TypeError):
                    continue  # validate reports broken lines; the writer just must not crash on them
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a" if append else "w", encoding="utf-8")

    def write(self, record: Record) -> bool:
        """Append one record; False when an equal one is already there."""
        key = record_key(record)
        if key in self._seen:
            self.skipped += 1
            return False
        self._seen.add(key)
        shaped = to_messages(record) if self.fmt == "messages" else record
        self._file.write(json.dumps(shaped, ensure_ascii=False) + "\n")
        self.written += 1
        return True

    def write_all(self, records: Iterable[Record]) -> int:
        """Append many; flush so an interrupted run keeps what it paid for. Returns how many were new."""
        n = sum(1 for r in records if self.write(r))
        self._file.flush()
        return n

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def load_lines(path: Path) -> list[Any]:
    """Every JSON value in a JSONL file (used by tests and the dialogue reader)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _drop_torn_line(path: Path) -> None:
    """A run killed mid-write leaves a last line without its newline: cut it, so appending stays valid."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
