"""Stage 2, guard: rate limits with a voice, input cleaning, messages with no words in them, emoji for short acks."""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from bot.exchange import Exchange
from bot.reactions import EMOJI, Ack, ack_kind
from bot.stages.gate import keep_as_context
from core.config import BotConfig
from core.messages import Reply
from core.sanitize import clean_input
from memory.store import ConversationStore
from memory.turns import Turn

log = logging.getLogger(__name__)
T = TypeVar("T")

WINDOW = 60.0  # seconds: rate_limit_per_minute counts over this, and one notice at most per window

# What the model reads when a message holds no words: a call by name, a picture it cannot see.
CALLED = {"zh": "（叫了你一声）", "en": "(calls your name)", "ja": "（あなたの名前を呼んだ）"}
PICTURE = {"zh": "（发来一张图片）", "en": "(sends a picture)", "ja": "（画像を送った）"}
# The character's lines when its card has none of its own.
RATE_LIMITED = {
    "zh": ["慢点说，一句一句来，我还没跟上呢。", "说得太快啦，歇口气，过一会儿再聊。"],
    "en": ["Slow down — one thing at a time, I'm still catching up.", "You're going too fast for me; give me a minute."],
    "ja": ["ちょっと待って、一つずつ話して。まだ追いついていないの。", "速すぎるよ。少し休んでからまた話そう。"],
}
MOMENT = {
    "zh": ["等我一下，刚才走神了，你再说一遍？"],
    "en": ["Give me a moment — say that again?"],
    "ja": ["ちょっと待って、もう一度言って？"],
}
NO_PICTURES = {
    "zh": ["我看不见图片呀，用文字说给我听吧。"],
    "en": ["I can't see pictures — tell me in words?"],
    "ja": ["絵は見えないの。言葉で教えて？"],
}


def in_language(table: Mapping[str, T], language: str) -> T:
    """The entry for a card language such as "zh" or "en-US"; English when there is none."""
    return table.get(language.split("-")[0].lower(), table["en"])


def pick(lines: Sequence[str], seed: str) -> str:
    """One of the lines, the same one for the same seed (no randomness to inject)."""
    return lines[zlib.crc32(seed.encode()) % len(lines)]


class Guard:
    """Limits each user (never the terminal), cleans the message, answers calls without words."""

    def __init__(
        self,
        cfg: BotConfig,
        store: ConversationStore,
        clock: Callable[[], float] = time.time,
        react_chance: float = 0.0,
        chance: Callable[[], float] = random.random,
    ):
        self.cfg = cfg
        self.store = store
        self.clock = clock  # stamps the messages kept as context
        self.react_chance = react_chance
        self.chance = chance

    async def __call__(self, ex: Exchange) -> Exchange | None:
        """The cleaned message; a canned line (over the limit, only a picture); None to stay silent."""
        msg, card = ex.incoming, ex.persona.card
        text = clean_input(ex.text, self.cfg.max_input_chars)
        who = f"{msg.platform}:{msg.user_id}"
        if msg.platform != "terminal" and not msg.unprompted and not await self.store.rate_hit(who, WINDOW, self.cfg.rate_limit_per_minute):
            log.info("rate limit: %s (kept as context)", who)
            await keep_as_context(self.store, ex, text, self.clock())
            if not await self.store.rate_hit(f"notice:{who}", WINDOW, 1):
                return None
            return await self._canned(ex, card.lines.rate_limited or in_language(RATE_LIMITED, card.language))
        if text:
            kind = ack_kind(text) if self.react_chance > 0 else None
            if kind and self.chance() < self.react_chance:
                return await self._react(ex, text, kind)
            return replace(ex, text=text)
        if any(a.kind == "image" for a in msg.attachments):
            lines = card.lines.no_pictures or in_language(NO_PICTURES, card.language)
            return await self._canned(ex, lines, said=in_language(PICTURE, card.language))
        if msg.is_direct or msg.mentions_bot or msg.reply_to_bot:
            return replace(ex, text=in_language(CALLED, card.language))
        return None

    async def _react(self, ex: Exchange, text: str, kind: Ack) -> Exchange:
        """An emoji instead of a reply; the message itself is kept as context."""
        msg, persona = ex.incoming, ex.persona
        await keep_as_context(self.store, ex, text, self.clock())
        reply = Reply(EMOJI[kind], persona.id, persona.name, "reaction", reply_to=msg.message_id)
        log.info("short acknowledgement from %s:%s answered with %s", msg.platform, msg.user_id, EMOJI[kind])
        return replace(ex, text=text, draft=reply.text, mode="reaction", reply=reply)

    async def _canned(self, ex: Exchange, lines: Sequence[str], said: str = "") -> Exchange:
        """Answer at once with one of the character's lines; with `said`, both sides are remembered."""
        msg, persona = ex.incoming, ex.persona
        text = persona.render(pick(lines, f"{msg.user_id}:{msg.message_id}"), msg.display_name or None)
        if said:
            now = self.clock()
            await self.store.append(
                ex.session,
                [Turn("user", said, msg.user_id, msg.display_name, True, now, msg.message_id),
                 Turn("assistant", text, "", persona.name, True, now)],
            )
        if ex.sink:
            await ex.sink(text)
        reply = Reply(text, persona.id, persona.name, "canned", reply_to=msg.message_id)
        return replace(ex, text=said or ex.text, draft=text, mode="canned", reply=reply)
