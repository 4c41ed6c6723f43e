"""`prepare dialogues`: scenes of lines become conversations where the character's lines are the outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from persona.card import Persona
from training.errors import TrainingError
from training.records import Record, conversation
from training.shapes import Circumstances, group_text, short_reply, with_circumstances

# Name:「line」 / Name：「line」 / Name: "line" / Name: line
_LINE = re.compile(r"^\s*([^:：「」\s][^:：「」]{0,30}?)\s*[:：]\s*(.+?)\s*$")
_QUOTES = (("「", "」"), ("『", "』"), ("“", "”"), ('"', '"'))
_BREAK = re.compile(r"^\s*(?:-{3,}|\*{3,}|={3,}|<START>)\s*$", re.I)
# 【场景】… / [Scene] … sets the scene; 【处境】… / [Situation] … is the character's situation in it
_SETTING = re.compile(r"^\s*(?:【(?:场景|情境|背景)】|\[(?:scene|setting)\])\s*(.+?)\s*$", re.I)
_SITUATION = re.compile(r"^\s*(?:【(?:处境|心境|此刻)】|\[(?:situation|motivation)\])\s*(.+?)\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Line:
    """One spoken line of a scene."""

    speaker: str
    text: str


@dataclass
class Scene:
    """The lines of one scene, its setting, and the situation of speakers in it ("" = any speaker)."""

    lines: list[Line] = field(default_factory=list)
    setting: str = ""
    situations: dict[str, str] = field(default_factory=dict)

    def situation(self, names: set[str]) -> str:
        """The situation given for one of `names`, else the one given for whoever speaks."""
        return next((self.situations[n] for n in names if n in self.situations), self.situations.get("", ""))


@dataclass(frozen=True)
class Shapes:
    """Which sample shapes to write (see training/shapes.py)."""

    max_turns: int = 8
    circumstances: bool = False
    group: bool = False
    short: int = 0  # also write short-reply samples of at most this many characters (0: none)


def _unquote(text: str) -> str:
    for left, right in _QUOTES:
        if text.startswith(left) and text.endswith(right) and len(text) >= 2:
            return text[len(left) : len(text) - len(right)].strip()
    return text


def parse_scenes(text: str) -> list[Scene]:
    """Scene text: `Name:「line」` per line; a blank line or `---` ends a scene.

    `【场景】…` / `[Scene] …` lines give the setting and `【处境】…` / `[Situation] …` the character's
    situation; other narration before the first spoken line is the setting when none is given.
    """
    scenes: list[Scene] = []
    current = Scene()
    narration: list[str] = []

    def close() -> None:
        nonlocal current, narration
        if current.lines:
            if not current.setting and narration:
                current.setting = "".join(narration)
            scenes.append(current)
        current, narration = Scene(), []

    for raw in text.splitlines():
        if not raw.strip() or _BREAK.match(raw):
            close()
            continue
        if m := _SETTING.match(raw):
            current.setting = f"{current.setting}{m.group(1)}"
            continue
        if m := _SITUATION.match(raw):
            current.situations[""] = f"{current.situations.get('', '')}{m.group(1)}"
            continue
        m = _LINE.match(raw)
        if m:
            spoken = _unquote(m.group(2))
            if spoken:
                current.lines.append(Line(m.group(1).strip(), spoken))
        elif not current.lines:
            narration.append(raw.strip())
    close()
    return scenes


def parse_jsonl(path: Path) -> list[Scene]:
    """JSONL scenes: `{"turns": [{"speaker", "text"}...], "setting"?, "situation"?}` per line, or one
    `{"scene"?, "speaker", "text"}` per line (a line with `setting`/`situation` and no speaker sets them)."""
    scenes: dict[str, Scene] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            listed = obj.get("turns", obj.get("dialogues"))
            if isinstance(listed, list):
                scene = scenes.setdefault(f"#{number}", Scene())
                scene.lines = [_turn(t) for t in listed]
            else:
                scene = scenes.setdefault(str(obj.get("scene", "")), Scene())
                if any(k in obj for k in ("speaker", "name", "role", "character")):
                    scene.lines.append(_turn(obj))
            _scene_facts(scene, obj)
        except (ValueError, TypeError, KeyError) as exc:
            raise TrainingError(f"{path}:{number}: {exc}") from None
    out = []
    for scene in scenes.values():
        scene.lines = [line for line in scene.lines if line.text]
        out.append(scene)
    return out


def _scene_facts(scene: Scene, obj: dict[str, object]) -> None:
    """setting/scenario and situation/motivation, plus CoSER-style `characters: [{name, motivation}]`."""
    setting = obj.get("setting", obj.get("scenario"))
    if isinstance(setting, str) and setting.strip():
        scene.setting = setting.strip()
    situation = obj.get("situation", obj.get("motivation"))
    if isinstance(situation, str) and situation.strip():
        scene.situations[""] = situation.strip()
    people = obj.get("characters")
    for person in people if isinstance(people, list) else []:
        if isinstance(person, dict) and isinstance(person.get("name"), str):
            told = person.get("situation", person.get("motivation"))
            if isinstance(told, str) and told.strip():
                scene.situations[person["name"].strip()] = told.strip()


def _turn(obj: dict[str, object]) -> Line:
    speaker = obj.get("speaker", obj.get("name", obj.get("role", obj.get("character"))))
    text = obj.get("text", obj.get("line", obj.get("content", obj.get("message"))))
    if not isinstance(speaker, str) or not isinstance(text, str):
        raise ValueError("a turn needs string 'speaker' and 'text'")
    return Line(speaker.strip(), _unquote(text.strip()))


def read_scenes(path: Path) -> list[Scene]:
    """Scenes from a .jsonl file or from scene text."""
    if not path.is_file():
        raise TrainingError(f"{path}: input file not found")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return parse_jsonl(path)
    return parse_scenes(path.read_text(encoding="utf-8"))


Exchange = tuple[list[Line], list[str]]


def exchanges(scene: Iterable[Line], names: set[str]) -> list[Exchange]:
    """(lines heard, lines said): each run of the character's lines answers the other lines before it.

    The character's lines before anyone else spoke, and other lines after its last, have nothing to pair
    with and are dropped.
    """
    pairs: list[Exchange] = []
    heard: list[Line] = []
    said: list[str] = []
    for line in scene:
        if line.speaker in names:
            if heard or said:
                said.append(line.text)
            continue
        if said and heard:
            pairs.append((heard, said))
            heard = []
        said = []
        heard.append(line)
    if said and heard:
        pairs.append((heard, said))
    return pairs


def scene_turns(scene: Iterable[Line], names: set[str]) -> list[tuple[str, str]]:
    """(input, output) pairs, the input with `Name: ` before each line when several people spoke."""
    return [(_render(heard, group=False), "\n".join(said)) for heard, said in exchanges(scene, names)]


def _render(heard: list[Line], group: bool) -> str:
    if not group and len({line.speaker for line in heard}) == 1:
        return "\n".join(line.text for line in heard)
    return group_text((line.speaker, line.text) for line in heard)


def dialogue_records(
    scenes: list[Scene], names: set[str], system: str, shapes: Shapes, persona: Persona | None = None
) -> list[Record]:
    """One multi-turn record per scene (split every `max_turns` turns), the system prompt on each first
    turn; with `shapes`, the scene's circumstances in it, group-chat inputs, and short-reply samples."""
    out: list[Record] = []
    for scene in scenes:
        pairs = exchanges(scene.lines, names)
        if not pairs:
            continue
        others = {line.speaker for line in scene.lines if line.speaker not in names}
        group = shapes.group and len(others) >= 2
        head = system
        if shapes.circumstances and persona is not None:
            head = with_circumstances(system, Circumstances(scene.setting, scene.situation(names)), persona)
        turns = [(_render(heard, group), "\n".join(said)) for heard, said in pairs]
        for start in range(0, len(turns), shapes.max_turns):
            out.append(conversation(head, turns[start : start + shapes.max_turns]))
        if shapes.short > 0:
            for question, answer in turns:
                short = short_reply(answer, shapes.short)
                if short:
                    out.append(conversation(head, [(question, short)]))
    return out
