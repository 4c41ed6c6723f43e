"""`prepare dialogues`: scenes of lines become conversations where the character's lines are the outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from training.errors import TrainingError
from training.records import Record, conversation

# Name:「line」 / Name：「line」 / Name: "line" / Name: line
_LINE = re.compile(r"^\s*([^:：「」\s][^:：「」]{0,30}?)\s*[:：]\s*(.+?)\s*$")
_QUOTES = (("「", "」"), ("『", "』"), ("“", "”"), ('"', '"'))
_BREAK = re.compile(r"^\s*(?:-{3,}|\*{3,}|={3,}|<START>)\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Line:
    """One spoken line of a scene."""

    speaker: str
    text: str


def _unquote(text: str) -> str:
    for left, right in _QUOTES:
        if text.startswith(left) and text.endswith(right) and len(text) >= 2:
            return text[len(left) : len(text) - len(right)].strip()
    return text


def parse_scenes(text: str) -> list[list[Line]]:
    """Scene text: `Name:「line」` per line; a blank line or `---` ends a scene; narration is skipped."""
    scenes: list[list[Line]] = []
    current: list[Line] = []
    for raw in text.splitlines():
        if not raw.strip() or _BREAK.match(raw):
            if current:
                scenes.append(current)
            current = []
            continue
        m = _LINE.match(raw)
        if m:
            spoken = _unquote(m.group(2))
            if spoken:
                current.append(Line(m.group(1).strip(), spoken))
    if current:
        scenes.append(current)
    return scenes


def parse_jsonl(path: Path) -> list[list[Line]]:
    """JSONL turns: `{"turns": [{"speaker", "text"}...]}` per scene, or one `{"scene"?, "speaker", "text"}` per line."""
    scenes: dict[str, list[Line]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            if isinstance(obj.get("turns"), list):
                scenes[f"#{number}"] = [_turn(t) for t in obj["turns"]]
            else:
                scenes.setdefault(str(obj.get("scene", "")), []).append(_turn(obj))
        except (ValueError, TypeError, KeyError) as exc:
            raise TrainingError(f"{path}:{number}: {exc}") from None
    return [[line for line in scene if line.text] for scene in scenes.values()]


def _turn(obj: dict[str, object]) -> Line:
    speaker = obj.get("speaker", obj.get("name", obj.get("role")))
    text = obj.get("text", obj.get("line", obj.get("content")))
    if not isinstance(speaker, str) or not isinstance(text, str):
        raise ValueError("a turn needs string 'speaker' and 'text'")
    return Line(speaker.strip(), _unquote(text.strip()))


def read_scenes(path: Path) -> list[list[Line]]:
    """Scenes from a .jsonl file or from scene text."""
    if not path.is_file():
        raise TrainingError(f"{path}: input file not found")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return parse_jsonl(path)
    return parse_scenes(path.read_text(encoding="utf-8"))


def scene_turns(scene: Iterable[Line], names: set[str]) -> list[tuple[str, str]]:
    """(input, output) pairs: each run of the character's lines answers the other lines before it.

    The character's lines before anyone else spoke, and other lines after its last, have nothing to pair
    with and are dropped. With several other speakers the input keeps their names.
    """
    pairs: list[tuple[str, str]] = []
    heard: list[Line] = []
    said: list[str] = []
    for line in scene:
        if line.speaker in names:
            if heard or said:
                said.append(line.text)
            continue
        if said and heard:
            pairs.append((_render(heard), "\n".join(said)))
            heard = []
        said = []
        heard.append(line)
    if said and heard:
        pairs.append((_render(heard), "\n".join(said)))
    return pairs


def _render(heard: list[Line]) -> str:
    if len({line.speaker for line in heard}) == 1:
        return "\n".join(line.text for line in heard)
    return "\n".join(f"{line.speaker}：{line.text}" for line in heard)


def dialogue_records(
    scenes: list[list[Line]], names: set[str], system: str, max_turns: int
) -> list[Record]:
    """One multi-turn record per scene (split every `max_turns` turns), system prompt on each first turn."""
    out: list[Record] = []
    for scene in scenes:
        pairs = scene_turns(scene, names)
        for start in range(0, len(pairs), max_turns):
            out.append(conversation(system, pairs[start : start + max_turns]))
    return out
