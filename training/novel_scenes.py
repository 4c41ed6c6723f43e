"""Scenes straight from a novel's prose: quoted speech (`悟空道：“……”`) with its speaker, setting and situation.

A scene is a run of paragraphs with speech inside one chapter; a paragraph without speech ends it
and becomes the setting of the next one (after the chapter's title). The speaker of a quotation is
the subject of the sentence that introduces it (`悟空闻说，心中大怒，道：` → 悟空); the character is
recognised by any of its names, other speakers by the words before the speech verb. The narration
that introduces the character's first line, less the verb, is its situation (`悟空闻说，心中大怒`).
These are heuristics for classical and modern Chinese novels: check a sample of the output.
"""

from __future__ import annotations

import re

from memory.knowledge.chapters import DEFAULT_PATTERN, split_chapters
from training.dialogues import Line, Scene

MAX_LINE_CHARS = 240
SETTING_CHARS = 160
_QUOTE = re.compile(r"[“「]([^”」\n]{1,600})[”」]")
_SENTENCE_END = re.compile(r"[。！？；!?;”」]")
_INTRO_END = re.compile(r"[：:]\s*$")
_VERB = re.compile(
    r"[，,]?\s*[^，。！？；：:“”「」]{0,4}?(?:道|说|曰|问|叫|喝|嚷|骂|答|笑|喊|吆喝|称|念|吟|云|报|禀|告)[^，。：:]{0,2}[：:]\s*$"
)
_LEADING = re.compile(r"^(?:却说|且说|话说|只见|原来|当时|忽见|那|这|又|忽|遂|便|却|即|被)+")
_NAME_END = re.compile(
    r"闻言|闻说|听说|听得|听了|见了|见说|看见|笑|忙|急|便|又|却|也|即|大怒|心中|叩头|上前|起身|低头|"
    r"道|说|曰|问|叫|喝|骂|答|喊|称|对|向|与|和|同|跟|把|将|在|就|才|都|只|出|进|来|去|走|看|望|见|"
    r"勒|拱|合掌|躬身|欠身|拍|摇|点头|回头|抬头|指|扯|跪|拜|坐|站|立|睁|掣|举|提|伸|转"
)
_LISTENER = tuple("对向与和同跟问叫教请拜见把被望朝将替给让唤骂")
UNKNOWN = "旁人"


def _last_sentence(text: str) -> str:
    parts = _SENTENCE_END.split(text)
    return parts[-1].strip() if parts else ""


def _says(intro: str, names: list[str]) -> bool:
    """The subject of the introducing sentence is one of the character's names."""
    subject = intro.split("，", 1)[0].split(",", 1)[0]
    for name in names:
        at = subject.find(name)
        if at >= 0 and not subject[max(0, at - 1) : at].endswith(_LISTENER) and "的" not in subject[at:]:
            return True
    return False


def _other_name(intro: str) -> str:
    subject = _LEADING.sub("", intro.split("，", 1)[0].split(",", 1)[0].strip())
    m = _NAME_END.search(subject)
    name = subject[: m.start()] if m else subject.rstrip("：:")
    return name if 2 <= len(name) <= 6 else UNKNOWN  # one character is mostly a pronoun (他, 怪)


def _situation(intro: str) -> str:
    """The introducing sentence without the speech verb: `悟空闻说，心中大怒，道：` → `悟空闻说，心中大怒`."""
    text = _VERB.sub("", intro).strip(" ，,：:")
    return text if "，" in text or len(text) > 8 else ""


def _clip(text: str, limit: int) -> str:
    """The last whole sentences of `text` within `limit` characters."""
    text = text.strip()
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = _SENTENCE_END.search(tail)
    return tail[cut.end() :].strip() if cut and cut.end() < len(tail) else tail


def paragraph_lines(paragraph: str, names: list[str]) -> tuple[list[Line], dict[str, str]]:
    """Spoken lines of one paragraph (speaker "" = the character) and the character's situation, if any."""
    lines: list[Line] = []
    situations: dict[str, str] = {}
    pos = 0
    for m in _QUOTE.finditer(paragraph):
        lead = paragraph[pos : m.start()]
        pos = m.end()
        intro = _last_sentence(lead)
        text = m.group(1).strip()
        if not _INTRO_END.search(lead) or not text or len(text) > MAX_LINE_CHARS:
            continue  # a quoted word inside narration, or a letter read out: not a line of dialogue
        if _says(intro, names):
            lines.append(Line("", text))
            if (told := _situation(intro)) and "" not in situations:
                situations[""] = told
        else:
            lines.append(Line(_other_name(intro), text))
    return lines, situations


def novel_scenes(text: str, names: list[str], chapter_pattern: str = "", speaker: str = "") -> list[Scene]:
    """Scenes of quoted speech from the novel; the character's lines are spoken by `speaker`."""
    names = sorted({n for n in names if n.strip()}, key=len, reverse=True)
    who = speaker or (names[0] if names else "")
    scenes: list[Scene] = []
    for section in split_chapters(text, chapter_pattern or DEFAULT_PATTERN):
        before = ""
        current = Scene()
        for paragraph in (p.strip() for p in section.text.split("\n")):
            if not paragraph:
                continue
            lines, situations = paragraph_lines(paragraph, names)
            if not lines:
                if current.lines:
                    scenes.append(current)
                    current = Scene()
                before = paragraph
                continue
            if not current.lines:
                narration = _clip(before, SETTING_CHARS)
                current.setting = "。".join(p for p in (section.title.strip(), narration) if p)
            for key, told in situations.items():
                current.situations.setdefault(who if key == "" else key, told)
            current.lines += [Line(line.speaker or who, line.text) for line in lines]
        if current.lines:
            scenes.append(current)
    return [s for s in scenes if any(line.speaker == who for line in s.lines)]
