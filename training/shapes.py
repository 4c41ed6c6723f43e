"""Sample shapes the strong roleplay datasets use, written and recognised in one place.

- given circumstances (CoSER-style): the scene's setting and the character's situation follow the
  system prompt under their own headings;
- group chat: every input line carries its speaker's name as `Name: text`, the layout the bot gives
  group messages at serving time (bot/pipeline/stages/compose.py);
- short replies: the character's reply cut to its leading whole sentences within a few dozen
  characters, the length the bot answers with in groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from persona.card import Persona

HEADINGS = {"zh": ("当前场景", "{char}此刻"), "en": ("Current scene", "{char} right now")}
SHORT_CHARS = 40
_SENTENCE = re.compile(r".+?(?:[。！？!?…~～]+[”」』]?|[.;](?=\s)|$)", re.S)
_GROUP_LINE = re.compile(r"^([^:\n：]{1,24}): \S")
_SCENE_MARKS = tuple(f"【{scene}】" for scene, _ in HEADINGS.values())


@dataclass(frozen=True, slots=True)
class Circumstances:
    """What surrounds a conversation: the scene's setting and the character's situation in it."""

    setting: str = ""
    situation: str = ""

    def __bool__(self) -> bool:
        return bool(self.setting.strip() or self.situation.strip())


def lang_of(persona: Persona) -> str:
    """`zh` for Chinese cards, else `en` (headings and prompts)."""
    return "zh" if persona.card.language.startswith("zh") else "en"


def with_circumstances(system: str, circ: Circumstances, persona: Persona) -> str:
    """The system prompt followed by the setting and the situation, each under its heading."""
    scene, now = HEADINGS[lang_of(persona)]
    parts = [system] if system else []
    if circ.setting.strip():
        parts.append(f"【{scene}】\n{circ.setting.strip()}")
    if circ.situation.strip():
        parts.append(f"【{now.format(char=persona.name)}】\n{circ.situation.strip()}")
    return "\n\n".join(parts)


def group_text(lines: Iterable[tuple[str, str]]) -> str:
    """(speaker, text) lines as the bot shows a group conversation: `Name: text`, one per line."""
    return "\n".join(f"{name}: {' '.join(text.split())}" for name, text in lines)


def short_reply(text: str, limit: int = SHORT_CHARS) -> str | None:
    """The leading whole sentences of `text` within `limit` characters; None when the first is longer."""
    text = _squeeze(text)
    if len(text) <= limit:
        return text or None
    out = ""
    for m in _SENTENCE.finditer(text):
        piece = m.group(0).strip()
        if not piece:
            continue
        joined = _squeeze(f"{out} {piece}")
        if len(joined) > limit:
            break
        out = joined
    return out or None


def _squeeze(text: str) -> str:
    """Whitespace runs as one space, none at all between two CJK characters (lines of one speaker)."""
    words = text.split()
    out = words[0] if words else ""
    for word in words[1:]:
        out += word if (not out[-1].isascii() and not word[0].isascii()) else f" {word}"
    return out


def kinds(turns: list[dict[str, str]], short_chars: int = SHORT_CHARS) -> set[str]:
    """The shapes one conversation has: pretraining, circumstances, group, short, multi-turn, single-turn."""
    if len(turns) == 1 and not turns[0].get("input") and not turns[0].get("system"):
        return {"pretraining"}
    found = {"multi-turn" if len(turns) > 1 else "single-turn"}
    if any(mark in turns[0].get("system", "") for mark in _SCENE_MARKS):
        found.add("circumstances")
    names: set[str] = set()
    grouped = True
    for turn in turns:
        lines = [line for line in turn.get("input", "").splitlines() if line.strip()]
        matches = [_GROUP_LINE.match(line) for line in lines]
        if not lines or not all(matches):
            grouped = False
            break
        names.update(m.group(1) for m in matches if m)
    if grouped and len(names) >= 2:
        found.add("group")
    if all(len(t.get("output", "")) <= short_chars for t in turns):
        found.add("short")
    return found
