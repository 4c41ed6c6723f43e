"""How long ago something happened, in the persona's language ("三天前", "last week")."""

from __future__ import annotations

import time

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int, counter: bool = True) -> str:
    """1..99 in Chinese numerals; 2 before a counter word is 两."""
    if n == 2 and counter:
        return "两"
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    if tens >= 10:
        return str(n)
    head = "" if tens == 1 else _DIGITS[tens]
    return f"{head}十{_DIGITS[ones] if ones else ''}"


def _zh(seconds: float) -> str:
    days = int(seconds // DAY)
    if seconds < 2 * MINUTE:
        return "刚才"
    if seconds < HOUR:
        return f"{chinese_number(int(seconds // MINUTE))}分钟前"
    if seconds < DAY:
        return f"{chinese_number(int(seconds // HOUR))}个小时前"
    if days < 2:
        return "昨天"
    if days < 7:
        return f"{chinese_number(days)}天前"
    if days < 14:
        return "上周"
    if days < 30:
        return f"{chinese_number(days // 7)}周前"
    if days < 60:
        return "上个月"
    if days < 365:
        return f"{chinese_number(days // 30)}个月前"
    if days < 730:
        return "去年"
    return f"{chinese_number(days // 365)}年前"


def _en(seconds: float) -> str:
    days = int(seconds // DAY)

    def n(value: int, unit: str) -> str:
        return f"{value} {unit}{'s' if value != 1 else ''} ago"

    if seconds < 2 * MINUTE:
        return "just now"
    if seconds < HOUR:
        return n(int(seconds // MINUTE), "minute")
    if seconds < 2 * HOUR:
        return "an hour ago"
    if seconds < DAY:
        return n(int(seconds // HOUR), "hour")
    if days < 2:
        return "yesterday"
    if days < 7:
        return n(days, "day")
    if days < 14:
        return "last week"
    if days < 30:
        return n(days // 7, "week")
    if days < 60:
        return "last month"
    if days < 365:
        return n(days // 30, "month")
    if days < 730:
        return "last year"
    return n(days // 365, "year")


def ago(at: float, now: float, language: str) -> str:
    """The age of something said at `at` (epoch seconds), or "" when its time is unknown."""
    if at <= 0:
        return ""
    seconds = max(0.0, now - at)
    return _zh(seconds) if language.lower().startswith("zh") else _en(seconds)


def day_of(at: float, language: str) -> str:
    """The local date of `at` ("20 January 2023", "2023年1月20日"), or "" when its time is unknown."""
    if at <= 0:
        return ""
    day = time.localtime(at)
    if language.lower().startswith("zh"):
        return f"{day.tm_year}年{day.tm_mon}月{day.tm_mday}日"
    return f"{day.tm_mday} {MONTHS[day.tm_mon - 1]} {day.tm_year}"
