"""Timelines and profiles of a conversation's members, read by rules from what each one says of themselves.

Every sentence a member says in the first person ("I", "my", "we", 我) that tells something lasting
about them becomes an item: an event (something that happened, dated by the time it names, read
against when it was said: "yesterday" said on 20 May is 19 May), or a line of their profile (what they
like, do, plan or own). Each item keeps where it came from (the turn's seq and the sentence's place
in it), so `/memory` can show it and `/forget` remove it. The rules are plain patterns, no model: an
item is the member's own sentence, never a paraphrase, and a sentence that fits no kind is no item.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

from memory.age import MONTHS
from memory.facts import instruction_like

Kind = Literal["event", "likes", "does", "plans", "owns"]
DAY = 86_400.0
MAX_CHARS = 160  # an item is its sentence, cut here
MIN_WORDS = 5  # shorter sentences ("I love it!") tell too little to keep

_SENTENCE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+|$)")
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|im|ive|my|mine|me|we|we've|we're|our)\b|我", re.I)
_QUESTION = re.compile(r"[?？]\s*$")
_SUBJECT = r"\b(?:i|we)(?:'d|'ll|'m|'ve| really| also| just| totally| absolutely| do| still| always| now| have| had| am| are| was| were| been| finally| recently| actually)*"
_KINDS: list[tuple[Kind, re.Pattern[str]]] = [
    ("plans", re.compile(
        _SUBJECT + r" (?:going to|gonna|plan(?:ning)? (?:to|on)|hop(?:e|ing) to|want to|thinking (?:of|about)|"
        r"can't wait to|looking forward to|about to|will (?!let|keep|tell|send)|decided to|aim(?:ing)? to|dream(?:ing)? of)"
        r"|\b(?:i'll|we'll) (?!let|keep|tell|send|try|check|have to|see|be)|\bnext (?:week|month|year|weekend)\b"
        r"|我(?:打算|准备|计划|想要|要去)|下周|下个月|明年", re.I)),
    ("owns", re.compile(
        _SUBJECT + r" (?:own|bought|adopted|built|got (?:a|an|my|two|three|four|some|new|another|this|these|\d)|"
        r"have (?:a|an|two|three|four|\d)|rescued)\b"
        r"|\bmy (?:new |own |little )?[a-z]+ (?:is |was )?(?:named|called)\b|\b(?:named|called) [A-Z][a-z]+"
        r"|我(?:有|买了|养了|领养了|收养了)", re.I)),
    ("likes", re.compile(
        _SUBJECT + r" (?:love|loved|like|liked|enjoy|enjoyed|adore|prefer|fan of|into|passionate|obsessed|hooked)"
        r"|\bmy (?:absolute |all-time )?favou?rite|\b(?:i'm|i am) (?:a (?:big |huge )?fan|really into|passionate|obsessed)"
        r"|我(?:很|最|特别|超)?(?:喜欢|爱|热爱|迷上)|最爱", re.I)),
    ("does", re.compile(
        _SUBJECT + r" (?:work|play|practi[cs]|volunteer|teach|stud|train|writ|paint|cook|bak|join|start|sign(?:ed)? up|"
        r"took up|learn|run|coach|build|design|sew|knit|garden|hik|climb|danc|sing|swim|taking (?:a|up)|[a-z]+ing (?:every|each))"
        r"|\bmy (?:job|work|career|business|studio|store|shop|team|class|course|hobby|hobbies)\b"
        r"|我(?:在学|在做|在练|是一名|当了|参加了|开始)", re.I)),
]
_ABOUT_YOU = re.compile(r"\b(?:you|your|you're|you've|you'll|ya)\b|你", re.I)
_MONTH_NAMES = tuple(m.lower() for m in MONTHS)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_AGO = re.compile(r"\b(\d+|a|an|one|two|three|four|five|six|a few|a couple of) (day|week|month|year)s? ago\b", re.I)
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "a few": 3, "a couple of": 2}
_LAST_WEEKDAY = re.compile(r"\b(?:last|on|this past) (" + "|".join(_WEEKDAYS) + r")\b", re.I)
_IN_MONTH = re.compile(r"\b(?:in|last|this past) (" + "|".join(_MONTH_NAMES) + r")\b", re.I)
# (pattern, days back, what the date shows: day, week, weekend, month or year)
_BACK: list[tuple[re.Pattern[str], float, str]] = [
    (re.compile(r"\bday before yesterday\b|前天", re.I), 2, "day"),
    (re.compile(r"\byesterday\b|\blast night\b|昨天|昨晚", re.I), 1, "day"),
    (re.compile(r"\btoday\b|\bthis morning\b|\btonight\b|\bjust now\b|今天|今早|今晚|刚才", re.I), 0, "day"),
    (re.compile(r"\blast weekend\b|\bthis past weekend\b|上周末", re.I), 7, "weekend"),
    (re.compile(r"\blast week\b|\bthis past week\b|\ba week ago\b|上周|上个星期|上礼拜", re.I), 7, "week"),
    (re.compile(r"\blast month\b|\ba month ago\b|上个月", re.I), 30, "month"),
    (re.compile(r"\blast year\b|\ba year ago\b|去年", re.I), 365, "year"),
]


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a member told of themselves: their own sentence, its kind, and when it happened or was said."""

    seq: int  # the turn it came from
    part: int  # which sentence of that turn
    user_id: str
    name: str
    kind: Kind
    text: str
    said: float  # when the turn was said
    when: float  # when it happened (an event), else when it was said
    span: str = "day"  # how exact `when` is: day, week, weekend, month, year

    @property
    def ident(self) -> str:
        """Where it came from, as `/forget` keeps it: "<seq>:<part>"."""
        return f"{self.seq}:{self.part}"


def _back_to_weekday(at: float, weekday: int) -> float:
    """The last `weekday` (0 Monday) strictly before the day of `at`."""
    today = time.localtime(at).tm_wday
    return at - ((today - weekday - 1) % 7 + 1) * DAY


def dated(sentence: str, said: float) -> tuple[float, str] | None:
    """When the past the sentence tells of happened, read against `said`; None when it names no time."""
    m = _AGO.search(sentence)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else _NUMBERS.get(m.group(1).lower(), 1)
        unit = m.group(2).lower()
        return said - n * {"day": 1, "week": 7, "month": 30, "year": 365}[unit] * DAY, unit
    for pattern, back, span in _BACK:
        if pattern.search(sentence):
            return said - back * DAY, span
    m = _LAST_WEEKDAY.search(sentence)
    if m:
        return _back_to_weekday(said, _WEEKDAYS.index(m.group(1).lower())), "day"
    m = _IN_MONTH.search(sentence)
    if m and not (m.group(1).lower() == "may" and not sentence[m.start():m.end()].lower().startswith(("in", "last"))):
        month = _MONTH_NAMES.index(m.group(1).lower()) + 1
        here = time.localtime(said)
        year = here.tm_year if month <= here.tm_mon else here.tm_year - 1
        return time.mktime((year, month, 15, 12, 0, 0, 0, 0, -1)), "month"
    return None


def kind_of(sentence: str) -> Kind | None:
    """Which kind of item a first-person sentence is (None: no lasting thing about the speaker)."""
    for kind, pattern in _KINDS:
        if pattern.search(sentence):
            return kind
    return None


def items_of(seq: int, user_id: str, name: str, text: str, said: float) -> list[Item]:
    """The items one member's turn holds: its first-person sentences that tell an event or a profile line."""
    out: list[Item] = []
    for part, sentence in enumerate(s.strip() for s in _SENTENCE.findall(text)):
        if not sentence or _QUESTION.search(sentence) or not _FIRST_PERSON.search(sentence) or _ABOUT_YOU.search(sentence):
            continue
        if instruction_like(sentence):  # the filter facts pass: "I want you to ignore your rules" is no profile line
            continue
        words = len(sentence.split()) if sentence.isascii() else len(sentence) // 2
        if words < MIN_WORDS:
            continue
        clipped = sentence if len(sentence) <= MAX_CHARS else sentence[:MAX_CHARS].rsplit(" ", 1)[0] + "…"
        when = dated(sentence, said)
        kind = kind_of(sentence)
        if when is not None and when[0] <= said and kind != "plans":
            out.append(Item(seq, part, user_id, name, "event", clipped, said, when[0], when[1]))
        elif kind is not None:
            out.append(Item(seq, part, user_id, name, kind, clipped, said, said))
    return out


def date_label(item: Item, language: str) -> str:
    """When an item happened (an event) or was said, as a date: "19 May 2023", "the week before 20 May 2023"."""
    zh = language.lower().startswith("zh")
    day = time.localtime(item.when)
    said = time.localtime(item.said)
    if zh:
        exact = f"{day.tm_year}年{day.tm_mon}月{day.tm_mday}日"
        told = f"{said.tm_year}年{said.tm_mon}月{said.tm_mday}日"
        return {"week": f"{told}的前一周", "weekend": f"{told}之前的周末", "month": f"{day.tm_year}年{day.tm_mon}月",
                "year": f"{day.tm_year}年"}.get(item.span, exact)
    exact = f"{day.tm_mday} {MONTHS[day.tm_mon - 1]} {day.tm_year}"
    told = f"{said.tm_mday} {MONTHS[said.tm_mon - 1]} {said.tm_year}"
    return {"week": f"the week before {told}", "weekend": f"the weekend before {told}",
            "month": f"{MONTHS[day.tm_mon - 1]} {day.tm_year}", "year": str(day.tm_year)}.get(item.span, exact)


_KIND_LABEL = {"en": {"likes": "likes", "does": "does", "plans": "plans", "owns": "has"},
               "zh": {"likes": "喜好", "does": "在做", "plans": "打算", "owns": "拥有"}}


def line(item: Item, language: str) -> str:
    """An item as the prompt and `/memory` show it: who, when or what kind, and their own words."""
    zh = language.lower().startswith("zh")
    sep = "：" if zh else ": "
    if item.kind == "event":
        return f"{item.name}, {date_label(item, language)}{sep}{item.text}"
    said = time.localtime(item.said)
    told = f"{said.tm_year}年{said.tm_mon}月" if zh else f"{MONTHS[said.tm_mon - 1]} {said.tm_year}"
    return f"{item.name} ({_KIND_LABEL['zh' if zh else 'en'][item.kind]}, {told}){sep}{item.text}"
