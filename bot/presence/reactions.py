"""Short acknowledgements ("哈哈", "ok", "233") that an emoji answers better than a sentence."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Ack = Literal["laugh", "agree"]
MAX_CHARS = 12

_LAUGH = re.compile(
    r"^(?:[哈呵嘿嘻]{2,}|h{2,}|(?:ha){2,}h?|(?:he){2,}|lol+|lmao+|rofl|xswl|笑死(?:了|我了)?|2{1}3{2,}|6{3,}|[😂🤣😆😄😁]+)$"
)
_AGREE = re.compile(
    r"^(?:ok(?:ay)?|k{1,2}|好(?:的|滴|哒|吧)?|嗯+|收到|了解|明白了?|对|是的|行|可以|👍+|👌+|yes|yep|yeah|sure|gotit|thx|thanks|谢谢|3q)$"
)
# the emoji a reaction uses, and the QQ face (OneBot `face` id) that shows the same feeling
EMOJI: dict[Ack, str] = {"laugh": "😄", "agree": "👍"}
QQ_FACE: dict[str, int] = {"😄": 13, "👍": 76}  # 13: 呲牙 (grin), 76: 赞 (thumbs up)


def ack_kind(text: str) -> Ack | None:
    """"laugh" or "agree" when the whole message is a short acknowledgement; else None."""
    word = "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if not c.isspace())
    word = word.strip("!！.。~～,，?？…")
    if not word or len(word) > MAX_CHARS:
        return None
    if _LAUGH.match(word):
        return "laugh"
    if _AGREE.match(word):
        return "agree"
    return None
