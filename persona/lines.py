"""The character's canned lines: its card's own `[lines]`, else the plain ones in its language.

One builder for every moment the model is not asked (over the rate limit, a picture it cannot see,
a voice message it could not hear, busy, "give me a moment"). The line is chosen by the message
(the same message always gets the same line: no randomness to inject) and {{user}} is filled in.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Literal, TypeVar

from core.messages import Incoming, Mode, Reply
from persona.card import Persona

T = TypeVar("T")
Kind = Literal["rate_limited", "no_pictures", "moment", "not_heard", "busy"]

# The character's lines when its card has none of its own.
RATE_LIMITED = {
    "zh": ["慢点说，一句一句来，我还没跟上呢。", "说得太快啦，歇口气，过一会儿再聊。"],
    "en": ["Slow down — one thing at a time, I'm still catching up.", "You're going too fast for me; give me a minute."],
    "ja": ["ちょっと待って、一つずつ話して。まだ追いついていないの。", "速すぎるよ。少し休んでからまた話そう。"],
}
NO_PICTURES = {
    "zh": ["我看不见图片呀，用文字说给我听吧。"],
    "en": ["I can't see pictures — tell me in words?"],
    "ja": ["絵は見えないの。言葉で教えて？"],
}
MOMENT = {
    "zh": ["等我一下，刚才走神了，你再说一遍？"],
    "en": ["Give me a moment — say that again?"],
    "ja": ["ちょっと待って、もう一度言って？"],
}
NOT_HEARD = {
    "zh": ["刚才那段语音我没听清，打字告诉我好吗？", "嗯？语音听不清楚，用文字说吧。"],
    "en": ["I couldn't make out that voice message — type it for me?", "Your voice message didn't come through; say it in words?"],
    "ja": ["今の音声、よく聞こえなかった。文字で教えて？"],
}
BUSY = {
    "zh": ["稍等一下，我正忙着回别人，马上就到你。", "人有点多，我一个一个来，等我一会儿。"],
    "en": ["One moment — I'm answering someone else, you're next.", "Busy right now; give me a moment."],
    "ja": ["ちょっと待ってね、今ほかの人に返事してるところ。", "少し混んでるの、順番に答えるね。"],
}
PLAIN: dict[Kind, Mapping[str, list[str]]] = {
    "rate_limited": RATE_LIMITED, "no_pictures": NO_PICTURES, "moment": MOMENT, "not_heard": NOT_HEARD, "busy": BUSY,
}


def in_language(table: Mapping[str, T], language: str) -> T:
    """The entry for a card language such as "zh" or "en-US"; English when there is none."""
    return table.get(language.split("-")[0].lower(), table["en"])


def pick(lines: Sequence[str], seed: str) -> str:
    """One of the lines, the same one for the same seed (no randomness to inject)."""
    return lines[zlib.crc32(seed.encode()) % len(lines)]


def line(persona: Persona, kind: Kind, msg: Incoming) -> str:
    """The character's line of this kind for this message, {{user}} filled in with the sender's name."""
    card = persona.card
    lines = getattr(card.lines, kind) or in_language(PLAIN[kind], card.language)
    return persona.render(pick(lines, f"{msg.user_id}:{msg.message_id}"), msg.display_name or None)


def canned(persona: Persona, kind: Kind, msg: Incoming, mode: Mode = "canned") -> Reply:
    """The line as the character's reply to the message."""
    return Reply(line(persona, kind, msg), persona.id, persona.name, mode, reply_to=msg.message_id)
