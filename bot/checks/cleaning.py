"""Model output cleaning: role prefixes, special tokens, mass mentions."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

_SPECIAL = re.compile(r"<\|[^|<>\n]{1,40}\|>|</?s>|<eo[as]>|\[/?INST\]")
_MASS = re.compile(r"@(everyone|here|全体成员|all)", re.I)  # also glued to what follows: @everyoneHolo


@functools.lru_cache(maxsize=256)
def _prefix_re(names: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(re.escape(n) for n in names if n)
    # every repeat at once; possessive spaces, so a long run of them is never tried twice
    return re.compile(rf"^(?:\s*+(?:{alts})\s*+[:：])+\s*+")


def clean_reply(text: str, char_names: Sequence[str]) -> str:
    """No role prefix, no special tokens, no @everyone (other speakers' turns: hygiene.cut_invented_turns)."""
    text = _SPECIAL.sub("", text)
    text = _prefix_re(tuple(char_names)).sub("", text, count=1)
    text = _MASS.sub(lambda m: "@\u200b" + m.group(1), text)
    return text.strip()
