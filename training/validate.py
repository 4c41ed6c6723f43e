"""`validate`: schema, empty and duplicate turns, the share of each sample shape, and length statistics."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.records import ROLES, TURN_KEYS, record_key, turns_of
from training.shapes import SHORT_CHARS, kinds

Counter = Callable[[str], int]
KINDS = ("single-turn", "multi-turn", "circumstances", "group", "short", "pretraining")


@dataclass
class Report:
    """What validation found across every file."""

    files: int = 0
    records: int = 0
    turns: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    over_length: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No schema errors."""
        return not self.errors


def _entries(path: Path) -> Iterator[tuple[str, str | None, Any]]:
    """(where, problem, value) per record: `file:line` for JSONL, `file:#i` for a JSON array file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            yield f"{path}:{getattr(exc, 'lineno', 1)}", f"not valid JSON: {exc}", None
            return
        for i, item in enumerate(items):
            yield f"{path}:#{i}", None, item
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", None, json.loads(line)
        except ValueError as exc:
            yield f"{path}:{number}", f"not valid JSON: {exc.args[0] if exc.args else exc}", None


def record_format(record: Any) -> str:
    """"messages" for an OpenAI-messages record, else "xtuner"."""
    return "messages" if isinstance(record, dict) and "messages" in record else "xtuner"


def schema_problem(record: Any) -> str | None:
    """Why a value is not a conversation record (xtuner's format or OpenAI messages), or None."""
    if not isinstance(record, dict):
        return "a record must be a JSON object"
    if record_format(record) == "messages":
        return messages_problem(record)
    extra = set(record) - {"conversation"}
    if extra:
        return f"unknown key(s) {sorted(extra)}"
    turns = record.get("conversation")
    if not isinstance(turns, list) or not turns:
        return "'conversation' must be a non-empty list of turns"
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return f"turn {i}: must be an object"
        unknown = set(turn) - TURN_KEYS
        if unknown:
            return f"turn {i}: unknown key(s) {sorted(unknown)}"
        if "output" not in turn:
            return f"turn {i}: missing 'output'"
        for key, value in turn.items():
            if not isinstance(value, str):
                return f"turn {i}: '{key}' must be a string"
        if "system" in turn and i > 0:
            return f"turn {i}: 'system' belongs on the first turn only"
    return None


def messages_problem(record: dict[str, Any]) -> str | None:
    """Why a value is not an OpenAI-messages record: system first, then user/assistant turns ending with
    the assistant (a lone assistant message is a pretraining chunk)."""
    extra = set(record) - {"messages"}
    if extra:
        return f"unknown key(s) {sorted(extra)}"
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    previous = ""
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            return f"message {i}: must be an object with 'role' and 'content'"
        if m["role"] not in ROLES:
            return f"message {i}: role must be system, user or assistant"
        if not isinstance(m["content"], str):
            return f"message {i}: 'content' must be a string"
        if m["role"] == "system" and i > 0:
            return f"message {i}: 'system' belongs first only"
        if m["role"] == previous and m["role"] != "system":
            return f"message {i}: two '{previous}' messages in a row"
        previous = m["role"]
    if previous != "assistant":
        return "the last message must be the assistant's"
    return None


def validate(paths: list[Path], count_tokens: Counter | None = None, max_length: int = 0) -> Report:
    """Check every record of every file; schema errors name file:line, the rest are warnings."""
    report = Report()
    seen: dict[str, str] = {}
    for path in paths:
        report.files += 1
        if not path.is_file():
            report.errors.append(f"{path}: file not found")
            continue
        for where, problem, record in _entries(path):
            problem = problem or schema_problem(record)
            if problem:
                report.errors.append(f"{where}: {problem}")
                continue
            _inspect(report, where, record, seen, count_tokens, max_length)
    return report


def _inspect(
    report: Report, where: str, record: dict[str, Any], seen: dict[str, str], count: Counter | None, max_length: int
) -> None:
    turns = turns_of(record)
    report.records += 1
    report.turns += len(turns)
    fmt = record_format(record)
    report.formats[fmt] = report.formats.get(fmt, 0) + 1
    shapes = kinds(turns)
    for kind in shapes:
        report.kinds[kind] = report.kinds.get(kind, 0) + 1
    pretrain = "pretraining" in shapes
    pairs: set[tuple[str, str]] = set()
    for i, turn in enumerate(turns):
        if not turn["output"].strip():
            report.warnings.append(f"{where}: turn {i}: empty output")
        if not pretrain and not turn.get("input", "").strip():
            report.warnings.append(f"{where}: turn {i}: empty input")
        pair = (turn.get("input", "").strip(), turn["output"].strip())
        if pair in pairs:
            report.warnings.append(f"{where}: turn {i}: repeats an earlier turn")
        pairs.add(pair)
    key = record_key(record)
    if key in seen:
        report.warnings.append(f"{where}: duplicate of {seen[key]}")
    else:
        seen[key] = where
    text = "".join(t.get("system", "") + t.get("input", "") + t["output"] for t in turns)
    report.chars.append(len(text))
    if count is not None:
        n = sum(count(t.get("system", "")) + count(t.get("input", "")) + count(t["output"]) for t in turns)
        report.tokens.append(n)
        if max_length and n > max_length:
            report.over_length += 1
            report.warnings.append(f"{where}: {n} tokens, over max_length {max_length} (will be cut)")


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"min": ordered[0], "mean": round(statistics.fmean(ordered), 1), "p50": statistics.median(ordered),
            "p95": p95, "max": ordered[-1], "total": sum(ordered)}


def render(report: Report, max_lines: int = 50) -> str:
    """The report as text: problems first, then statistics."""
    lines = [f"error: {e}" for e in report.errors[:max_lines]]
    if len(report.errors) > max_lines:
        lines.append(f"error: ... and {len(report.errors) - max_lines} more")
    lines += [f"warning: {w}" for w in report.warnings[:max_lines]]
    if len(report.warnings) > max_lines:
        lines.append(f"warning: ... and {len(report.warnings) - max_lines} more")
    lines.append(f"files {report.files}  records {report.records}  turns {report.turns}  "
                 f"errors {len(report.errors)}  warnings {len(report.warnings)}")
    if report.records:
        lines.append("formats: " + "  ".join(f"{k} {v}" for k, v in sorted(report.formats.items())))
        lines.append("kinds: " + "  ".join(
            f"{k} {report.kinds.get(k, 0)} ({100 * report.kinds.get(k, 0) / report.records:.0f} %)" for k in KINDS
        ) + f"  (short: every reply within {SHORT_CHARS} characters; a record can be several kinds)")
    if report.chars:
        lines.append("chars per record: " + "  ".join(f"{k} {v}" for k, v in _stats(report.chars).items()))
    if report.tokens:
        lines.append("tokens per record: " + "  ".join(f"{k} {v}" for k, v in _stats(report.tokens).items()))
        lines.append(f"records over max_length: {report.over_length}")
    return "\n".join(lines)


def token_counter(path: Path) -> Counter:
    """Token counts from a local tokenizer: a tokenizer.json, else a transformers model folder."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if file.is_file() and file.suffix == ".json":
        from tokenizers import Tokenizer  # imported here: only `validate --tokenizer` needs it

        fast = Tokenizer.from_file(str(file))
        return lambda text: len(fast.encode(text, add_special_tokens=False).ids) if text else 0
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no tokenizer there (give a model folder or a tokenizer.json)")
    from transformers import AutoTokenizer  # InternLM ships a sentencepiece model and its own tokenizer code

    slow = AutoTokenizer.from_pretrained(str(path), trust_remote_code=True)
    return lambda text: len(slow.encode(text, add_special_tokens=False)) if text else 0
