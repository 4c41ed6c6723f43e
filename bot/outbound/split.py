"""Cutting long replies into platform-sized messages (Discord 2,000 characters, QQ `message_chars`) without breaking code fences."""

from __future__ import annotations

import re

LIMIT = 2000
FENCE = "```"
CLOSE = "\n" + FENCE
# A sentence ends at . ! ? … (followed by a space) or at CJK full stops (no space follows those).
SENTENCE_END = re.compile(r"[.!?…](?=\s)|[。！？]")


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    """Parts of at most `limit` characters, cut at paragraphs, lines, sentences, then spaces.

    A code fence open at a cut is closed at the end of the part and reopened (same language line)
    at the start of the next one, so every part renders on its own. Each cut looks only at the
    next `limit` characters, so the whole split takes time linear in the text.
    """
    text = text.strip()
    parts: list[str] = []
    opener = ""  # the fence line to reopen in the next part; "" outside a fence
    pos = 0  # where the rest of the text starts
    while pos < len(text):
        head = opener + "\n" if opener else ""
        if len(head) + len(text) - pos <= limit:
            parts.append(head + text[pos:])
            break
        # room for a closing fence only where one may be needed
        fenced = opener or text.find(FENCE, pos, pos + limit - len(head)) >= 0
        budget = limit - len(head) - (len(CLOSE) if fenced else 0)
        window = text[pos : pos + budget + 1]
        cut = _cut_point(window, budget)
        chunk = window[:cut].rstrip()
        pos += cut
        opener = _fence_after(opener, chunk)
        parts.append(head + chunk + (CLOSE if opener else ""))
        # Inside a fence the indentation of the next line is content; outside, whitespace is not.
        while pos < len(text) and (text[pos] == "\n" if opener else text[pos].isspace()):
            pos += 1
        if opener and len(opener) > limit // 4:
            opener = FENCE  # an absurd info string is not worth repeating
    return parts


def _cut_point(text: str, budget: int) -> int:
    """Where to cut: the latest good boundary within `budget` characters (never 0)."""
    window = text[: budget + 1]  # `text` may itself be no longer than this window
    for sep, floor in (("\n\n", budget // 2), ("\n", budget // 3)):
        at = window.rfind(sep, 0, budget)
        if at >= floor:
            return at
    ends = [m.end() for m in SENTENCE_END.finditer(window) if m.end() <= budget]
    if ends and ends[-1] >= budget // 3:
        return _outside_fence_line(text, ends[-1])
    at = window.rfind(" ", 0, budget)
    if at >= budget // 3:
        return _outside_fence_line(text, at)
    return _outside_fence_line(text, max(1, budget))


def _outside_fence_line(text: str, cut: int) -> int:
    """Move a cut that falls inside a fence line to the start of that line."""
    start = text.rfind("\n", 0, cut) + 1
    if start > 0 and text[start:cut].lstrip().startswith(FENCE):
        return start
    return cut


def _fence_after(opener: str, chunk: str) -> str:
    """The fence still open after `chunk` (its opening line), given the one open before it."""
    state = opener
    for line in chunk.split("\n"):
        if line.lstrip().startswith(FENCE):
            state = "" if state else line.strip()
    return state
