"""Stage 2, guard: input cleaning, messages with no words in them, emoji for short acks.

The rate limit comes before every stage, in the chain's intake (bot/pipeline/intake.py).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from bot.pipeline.addressing import keep_as_context
from bot.pipeline.exchange import Exchange
from bot.presence.reactions import EMOJI, Ack, ack_kind
from core.config import BotConfig
from core.messages import Reply, said_at
from core.sanitize import clean_input
from core.stores import TurnLog
from memory.turns import Turn
from persona.lines import Kind, canned, in_language

log = logging.getLogger(__name__)

# What the model reads when a message holds no words: a call by name, a picture it cannot see.
CALLED = {"zh": "（叫了你一声）", "en": "(calls your name)", "ja": "（あなたの名前を呼んだ）"}
PICTURE = {"zh": "（发来一张图片）", "en": "(sends a picture)", "ja": "（画像を送った）"}


class Guard:
    """Cleans the message, answers calls without words and pictures it cannot see."""

    def __init__(
        self,
        cfg: BotConfig,
        store: TurnLog,
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
        """The cleaned message; a canned line (only a picture); None to stay silent."""
        msg, card = ex.incoming, ex.persona.card
        text = clean_input(ex.text, self.cfg.max_input_chars)
        if text:
            kind = ack_kind(text) if self.react_chance > 0 else None
            if kind and self.chance() < self.react_chance:
                return await self._react(ex, text, kind)
            return replace(ex, text=text)
        if any(a.kind == "image" for a in msg.attachments):
            return await self._canned(ex, "no_pictures", said=in_language(PICTURE, card.language))
        if msg.is_direct or msg.mentions_bot or msg.reply_to_bot:
            return replace(ex, text=in_language(CALLED, card.language))
        return None

    async def _react(self, ex: Exchange, text: str, kind: Ack) -> Exchange:
        """An emoji instead of a reply; the message itself is kept as context."""
        msg, persona = ex.incoming, ex.persona
        await keep_as_context(self.store, ex, text, said_at(msg, self.clock()))
        reply = Reply(EMOJI[kind], persona.id, persona.name, "reaction", reply_to=msg.message_id)
        log.info("short acknowledgement from %s:%s answered with %s", msg.platform, msg.user_id, EMOJI[kind])
        return replace(ex, text=text, draft=reply.text, mode="reaction", reply=reply)

    async def _canned(self, ex: Exchange, kind: Kind, said: str = "") -> Exchange:
        """Answer at once with one of the character's lines; with `said`, both sides are remembered."""
        msg, persona = ex.incoming, ex.persona
        reply = canned(persona, kind, msg)
        text = reply.text
        if said:
            now = self.clock()
            await self.store.append(
                ex.session,
                [Turn("user", said, msg.user_id, msg.display_name, True, said_at(msg, now), msg.message_id),
                 Turn("assistant", text, "", persona.name, True, now)],
            )
        if ex.sink:
            await ex.sink(text)
        return replace(ex, text=said or ex.text, draft=text, mode="canned", reply=reply)
