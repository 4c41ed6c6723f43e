"""When a question asks about: a time range ("last week", "in May", "in 2023", "before X"), or a date ("when ...").

Recall steers by it: turns said inside the range count more, and a "when" question prefers turns
that name a time ("yesterday", "last Friday", "in March"), since they date what they tell. Ranges
are read relative to the question's own time; a month without a year is its latest occurrence.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from memory.age import MONTHS

DAY = 86_400.0
_MONTHS = tuple(name.lower() for name in MONTHS)
_MONTH = "(" + "|".join(_MONTHS) + "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
_ZH_MONTH = re.compile(r"(?:(\d{4})年)?(\d{1,2}|[一二三四五六七八九十]{1,2})月")
_ZH_NUM = {c: i for i, c in enumerate("零一二三四五六七八九十")}
_WHEN = re.compile(r"\bwhen\b|\bwhat (?:day|date|time|year|month)\b|\bhow long\b|\bwhich (?:day|year|month)\b|\bhow many (?:days|weeks|months|years)\b"
                   r"|什么时候|哪天|哪一天|几号|哪年|哪个月|多久", re.I)
_EN_RANGE = [  # (pattern, days back from the question to the range's start, its length in days)
    (re.compile(r"\b(yesterday|last night)\b", re.I), 1, 1),
    (re.compile(r"\b(today|this morning|tonight)\b", re.I), 0, 1),
    (re.compile(r"\b(last|past) week\b|\ba week ago\b", re.I), 14, 14),
    (re.compile(r"\bthis week\b", re.I), 7, 7),
    (re.compile(r"\b(last|past) month\b|\ba month ago\b", re.I), 62, 62),
    (re.compile(r"\b(last|past) year\b|\ba year ago\b", re.I), 730, 730),
    (re.compile(r"\b(recently|lately)\b", re.I), 30, 30),
]
_ZH_RANGE = [("昨天", 1, 1), ("今天", 0, 1), ("上周", 14, 14), ("上个星期", 14, 14), ("这周", 7, 7), ("本周", 7, 7),
             ("上个月", 62, 62), ("去年", 730, 730), ("最近", 30, 30)]
_YEAR = re.compile(r"\b(19\d\d|20\d\d)\b")
_IN_MONTH = re.compile(rf"\b{_MONTH}(?:\s*,?\s*(\d{{4}}))?\b", re.I)
# a day: "25 May, 2022", "May 25th 2022", "on 3 March" (the month's latest occurrence without a year)
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b(?:\s*,?\s*(\d{{4}}))?", re.I)
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:\s*,?\s*(\d{{4}}))?", re.I)
_ZH_DAY = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})[日号]")
_BEFORE = re.compile(r"\b(before|after|since)\b|之前|以前|之后|以后", re.I)
_EN_RELATIVE = re.compile(r"^(?P<rest>.*?)\b(?P<dir>before|after|since)\b\s+(?P<anchor>[^,;?!.]+)", re.I)
_ZH_RELATIVE = re.compile(r"(?P<anchor>[^，,。？?！!]+?)(?P<dir>之前|以前|之后|以后)(?P<rest>.*)")
RELATIVE_DAYS = 30.0  # "before X": what was said in the month before X's turn; "after X": in the month after it
# words that date what a turn tells: a turn holding one of these answers "when"
TIMED = re.compile(
    r"\b(yesterday|today|tonight|tomorrow|ago|last|next|weekend|week|month|year|recently|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"january|february|march|april|june|july|august|september|october|november|december|\d{4})\b"
    r"|昨天|今天|明天|前天|上周|下周|周末|上个月|下个月|去年|明年|星期|礼拜|[一二三四五六七八九十\d]+月|[一二三四五六七八九十\d]+号",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Frame:
    """What a question says about time: a range of said-at times (0, 0: none), and whether it asks when."""

    start: float = 0.0
    end: float = 0.0
    asks_when: bool = False
    relative: bool = False  # "before X" / "after X": X's own turn decides, not a range of ours

    @property
    def ranged(self) -> bool:
        """Whether the question names a range."""
        return self.end > self.start


def _month_range(month: int, year: int | None, now: float) -> tuple[float, float]:
    """The month `month` of `year` (else its latest start not after `now`), as epoch seconds."""
    here = time.localtime(now)
    if year is None:
        year = here.tm_year if month <= here.tm_mon else here.tm_year - 1
    start = time.mktime((year, month, 1, 0, 0, 0, 0, 0, -1))
    end = time.mktime((year + (month == 12), month % 12 + 1, 1, 0, 0, 0, 0, 0, -1))
    return start, end


def _zh_number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _ZH_NUM[text[1]]
    return _ZH_NUM[text[0]] * (10 if len(text) > 1 else 1) + (_ZH_NUM[text[-1]] if len(text) > 1 and text[-1] != "十" else 0)


@dataclass(frozen=True, slots=True)
class Relative:
    """A question about what came before or after something: "where was John before he went to Chicago?"."""

    after: bool  # False: before
    anchor: str  # what it is before or after ("he went to Chicago")
    rest: str  # the question less that part ("where was John")

    def around(self, at: float) -> Frame:
        """The range it asks about, the anchor's turn being said at `at`."""
        return Frame(at, at + RELATIVE_DAYS * DAY) if self.after else Frame(at - RELATIVE_DAYS * DAY, at)


def relative(question: str) -> Relative | None:
    """The "before X" / "after X" in a question, or None."""
    m = _EN_RELATIVE.search(question)
    if m and m.group("anchor").strip():
        return Relative(m.group("dir").lower() != "before", m.group("anchor").strip(), m.group("rest").strip())
    z = _ZH_RELATIVE.search(question)
    if z and z.group("anchor").strip():
        return Relative(z.group("dir") in ("之后", "以后"), z.group("anchor").strip(), z.group("rest").strip())
    return None


def _day(question: str, now: float) -> float | None:
    """The start of the day a question names ("on 25 May, 2022", "5月3日"), or None."""
    found: tuple[int, int, int | None] | None = None
    if m := _DAY_MONTH.search(question):
        found = (int(m.group(1)), _month_number(m.group(2)), int(m.group(3)) if m.group(3) else None)
    elif m := _MONTH_DAY.search(question):
        found = (int(m.group(2)), _month_number(m.group(1)), int(m.group(3)) if m.group(3) else None)
    elif z := _ZH_DAY.search(question):
        found = (int(z.group(3)), int(z.group(2)), int(z.group(1)) if z.group(1) else None)
    if found is None or not (1 <= found[0] <= 31 and 1 <= found[1] <= 12):
        return None
    day, month, year = found
    start, _ = _month_range(month, year, now)
    return start + (day - 1) * DAY


def _month_number(name: str) -> int:
    return next(i for i, full in enumerate(_MONTHS, 1) if full.startswith(name.lower()[:3]))


def frame(question: str, now: float) -> Frame:
    """The time range and the "when" in a question, `now` being when it was asked."""
    asks = bool(_WHEN.search(question))
    relative = bool(_BEFORE.search(question))
    day = _day(question, now)
    if day is not None:  # a turn of that day, or the next (what happened is often told a day later)
        return Frame(day - DAY, day + 2 * DAY, asks, relative)
    m = _IN_MONTH.search(question)
    if m and not (m.group(1).lower() == "may" and not m.group(2) and not re.search(r"\bin may\b", question, re.I)):
        month = _month_number(m.group(1))
        start, end = _month_range(month, int(m.group(2)) if m.group(2) else None, now)
        return Frame(start, end, asks, relative)
    z = _ZH_MONTH.search(question)
    if z and 1 <= _zh_number(z.group(2)) <= 12:
        start, end = _month_range(_zh_number(z.group(2)), int(z.group(1)) if z.group(1) else None, now)
        return Frame(start, end, asks, relative)
    y = _YEAR.search(question)
    if y:
        year = int(y.group(1))
        return Frame(time.mktime((year, 1, 1, 0, 0, 0, 0, 0, -1)), time.mktime((year + 1, 1, 1, 0, 0, 0, 0, 0, -1)), asks, relative)
    for pattern, back, length in _EN_RANGE:
        if pattern.search(question):
            return Frame(now - back * DAY, now - back * DAY + length * DAY + DAY, asks, relative)
    for word, back, length in _ZH_RANGE:
        if word in question:
            return Frame(now - back * DAY, now - back * DAY + length * DAY + DAY, asks, relative)
    return Frame(asks_when=asks, relative=relative)
