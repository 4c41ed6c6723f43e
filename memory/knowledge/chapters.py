"""Chapters: headings found in a novel's text, numbered so a spoiler limit can compare them."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

DEFAULT_PATTERN = (
    r"^[ \t\u3000]*(?:第[0-9０-９零〇一二三四五六七八九十百千两]+[回章节]"
    r"|楔子|序章|序言|引子|尾声|后记|番外"
    r"|(?:Chapter|CHAPTER)\s+(?:\d+|[IVXLCDM]+)\b)"
)
HEADING_MAX_CHARS = 60
_PRELUDE = ("楔子", "序章", "序言", "引子")
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMBER = re.compile(r"第([0-9０-９零〇一二三四五六七八九十百千两]+)|(?:Chapter|CHAPTER)\s+(\d+)")


@dataclass(frozen=True, slots=True)
class Section:
    """One chapter (or the whole text when it has none): number, heading and body."""

    chapter: int
    title: str
    text: str
    start: int
    doc: str = ""


def chinese_number(text: str) -> int | None:
    """一百二十 -> 120, 十三 -> 13, 二〇五 -> 205, ４２ -> 42; None when it is not a number."""
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if text.isdigit():
        return int(text)
    if any(c not in _DIGITS and c not in _UNITS for c in text):
        return None
    if not any(c in _UNITS for c in text):
        return int("".join(str(_DIGITS[c]) for c in text))
    total, digit = 0, 0
    for c in text:
        if c in _DIGITS:
            digit = _DIGITS[c]
        else:
            total += (digit or 1) * _UNITS[c]
            digit = 0
    return total + digit


def heading_number(title: str) -> int | None:
    """The number a heading states (第十二回 -> 12, Chapter 3 -> 3), 0 for a prelude."""
    if title.startswith(_PRELUDE):
        return 0
    m = _NUMBER.search(title)
    if not m:
        return None
    return chinese_number(m.group(1)) if m.group(1) else int(m.group(2))


def split_chapters(text: str, pattern: str = "") -> list[Section]:
    """Cut text at chapter headings; text before the first heading is chapter 0.

    Chapters are numbered by what their headings say when those numbers rise through the file,
    else by their order (volumes that restart at 第一章 would otherwise collide).
    """
    regex = re.compile(pattern or DEFAULT_PATTERN, re.M)
    heads = [
        m for m in regex.finditer(text)
        if len(_line_at(text, m.start())) <= HEADING_MAX_CHARS
    ]
    starts = [text.rfind("\n", 0, m.start()) + 1 for m in heads]
    if not heads:
        return [Section(0, "", text, 0)] if text.strip() else []
    titles = [_line_at(text, s).strip() for s in starts]
    numbers = _numbers(titles)
    out: list[Section] = []
    if text[: starts[0]].strip():
        out.append(Section(0, "", text[: starts[0]], 0))
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        body_start = start + len(_line_at(text, start)) + 1
        out.append(Section(numbers[i], titles[i], text[body_start:end], body_start))
    return out


def _numbers(titles: list[str]) -> list[int]:
    stated: list[int] = []
    for title in titles:
        n = heading_number(title)
        # an epilogue or extra without a number follows the chapter before it
        stated.append(n if n is not None else (stated[-1] + 1 if stated else 1))
    if all(a < b for a, b in itertools.pairwise(stated)):
        return stated
    first = 0 if stated and stated[0] == 0 else 1
    return list(range(first, first + len(titles)))


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)]
