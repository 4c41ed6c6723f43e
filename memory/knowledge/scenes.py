"""Scenes: the character's own lines of dialogue found in the source work."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from memory.knowledge.chapters import Section

MIN_CHARS, MAX_CHARS = 4, 240
# words right before a name that make the name the listener, not the speaker (八戒对行者道)
_LISTENER = (*tuple("对向与和同跟问叫教请拜见把被望朝将替给让唤骂"), "告诉")
_VERBS = "道|说|曰|叫|喝|嚷|骂|问|答|笑|喊|吆喝|称|念|吟"


@dataclass(frozen=True, slots=True)
class Scene:
    """One line the character speaks in the source, with the chapter it is in."""

    id: str
    source: str
    chapter: int
    speaker: str
    line: str


def speech_pattern(names: list[str]) -> re.Pattern[str] | None:
    """`NAME [manner] VERB：“LINE”` for any of the names, longest names first."""
    names = sorted({n for n in names if n.strip()}, key=len, reverse=True)
    if not names:
        return None
    who = "|".join(re.escape(n) for n in names)
    return re.compile(
        rf"(?P<who>{who})(?P<manner>[^，。！？；“”「」：\n]{{0,10}}?)(?:{_VERBS})[^，。“”「」：\n]{{0,2}}[：:]\s*[“「](?P<line>[^”」\n]+)[”」]"
    )


def find_scenes(sections: list[Section], source: str, names: list[str]) -> list[Scene]:
    """Every line spoken by one of `names` (the card's name and aliases) in these sections."""
    pattern = speech_pattern(names)
    if pattern is None:
        return []
    out: list[Scene] = []
    seen: set[str] = set()
    for section in sections:
        for m in pattern.finditer(section.text):
            before = section.text[max(0, m.start() - 2) : m.start()]
            if before.endswith(_LISTENER) or _listener(m.group("manner")):
                continue
            line = m.group("line").strip()
            if not MIN_CHARS <= len(line) <= MAX_CHARS:
                continue
            digest = hashlib.sha1(f"{source}\x00{section.chapter}\x00{line}".encode()).hexdigest()[:24]
            if digest in seen:
                continue
            seen.add(digest)
            out.append(Scene(digest, source, section.chapter, m.group("who"), line))
    return out


def _listener(manner: str) -> bool:
    """`行者对八戒道` names someone else after the speaker: still the speaker's line; but
    `行者的师父道` is someone else's."""
    return "的" in manner
