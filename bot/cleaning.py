"""Model output cleaning: role prefixes, special tokens, invented turns, leaks, mass mentions."""

from __future__ import annotations

import re
from collections.abc import Sequence

_SPECIAL = re.compile(r"<\|[^|<>\n]{1,40}\|>|</?s>|<eo[as]>|\[/?INST\]")
_MASS = re.compile(r"@(everyone|here|全体成员|all)", re.I)  # also glued to what follows: @everyoneHolo


def _prefix_re(names: Sequence[str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(n) for n in names if n)
    return re.compile(rf"^\s*(?:{alts})\s*[:：]\s*")


def clean_reply(text: str, char_names: Sequence[str], user_names: Sequence[str]) -> str:
    """What may be posted: no role prefix, no special tokens, no invented user turn, no @everyone."""
    text = _SPECIAL.sub("", text)
    prefix = _prefix_re(char_names)
    while True:
        stripped = prefix.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    users = "|".join(re.escape(n) for n in {*user_names, "用户", "User", "user"} if n)
    turn = re.search(rf"\n\s*(?:{users})\s*[:：]", text)
    if turn:
        text = text[: turn.start()]
    text = _MASS.sub(lambda m: "@\u200b" + m.group(1), text)
    return text.strip()


def leaks(text: str, secret: str, window: int = 24) -> bool:
    """True when the reply repeats a long verbatim stretch of the hidden prompt."""
    sentences = [s.strip() for s in re.split(r"[。！？\n.!?]", secret) if len(s.strip()) >= window]
    return any(s in text for s in sentences)


class StreamCleaner:
    """Cleans deltas on the fly: holds back the start until a role prefix can be ruled out."""

    def __init__(self, char_names: Sequence[str], hold: int = 16):
        self._prefix = _prefix_re(char_names)
        self._hold = hold
        self._buffer = ""
        self._open = False

    def feed(self, delta: str) -> str:
        """Text that can be shown now."""
        delta = _MASS.sub(lambda m: "@\u200b" + m.group(1), _SPECIAL.sub("", delta))
        if self._open:
            return delta
        self._buffer += delta
        if len(self._buffer) < self._hold:
            return ""
        return self.flush()

    def flush(self) -> str:
        """Release what was held back."""
        if self._open:
            return ""
        self._open = True
        out = self._buffer
        while (stripped := self._prefix.sub("", out, count=1)) != out:
            out = stripped
        self._buffer = ""
        return out.lstrip()
