"""Stage 1, gate: should the character answer this message at all?"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from bot.pipeline.addressing import addressed, keep_as_context
from bot.pipeline.exchange import Exchange
from core.config import BotConfig
from core.messages import said_at
from core.sanitize import clean_input
from core.stores import TurnLog
from memory.turns import SessionKey

log = logging.getLogger(__name__)


class Gate:
    """DMs, mentions, replies and names pass; the rest is kept as group context and stops here."""

    def __init__(
        self,
        cfg: BotConfig,
        store: TurnLog,
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
        overheard: Callable[[SessionKey], None] | None = None,
    ):
        self.cfg = cfg
        self.overheard = overheard  # told of each message kept as context (memory indexes it in the background)
        self.store = store
        self.clock = clock
        self.chance = chance
        self._last_random: dict[str, float] = {}
        self._bot_streak: dict[str, int] = {}

    async def __call__(self, ex: Exchange) -> Exchange | None:
        """Pass addressed messages on; store the others as context."""
        msg = ex.incoming
        if msg.is_self:
            return None
        channel = msg.conversation.key
        if msg.author_is_bot:
            allowed = ex.settings.bots if ex.settings.bots is not None else self.cfg.answer_bots
            streak = self._bot_streak.get(channel, 0)
            if not allowed or streak >= self.cfg.bot_reply_limit:
                await self._keep(ex)
                return None
        if self._addressed(ex) or self._by_chance(ex, channel):
            if msg.author_is_bot:
                self._bot_streak[channel] = self._bot_streak.get(channel, 0) + 1
            else:
                self._bot_streak.pop(channel, None)
            return ex
        if not msg.author_is_bot:
            self._bot_streak.pop(channel, None)
        await self._keep(ex)
        return None

    def _addressed(self, ex: Exchange) -> bool:
        return addressed(ex.incoming, ex.text, ex.persona)

    def _by_chance(self, ex: Exchange, channel: str) -> bool:
        p = ex.settings.chance if ex.settings.chance is not None else self.cfg.reply_chance
        if p <= 0:
            return False
        now = self.clock()
        if now - self._last_random.get(channel, float("-inf")) < self.cfg.reply_cooldown_seconds:
            return False
        if self.chance() < p:
            self._last_random[channel] = now
            return True
        return False

    async def _keep(self, ex: Exchange) -> None:
        """Unaddressed group messages become context (keyed by user id, never by nickname)."""
        if not ex.incoming.is_direct:
            await keep_as_context(self.store, ex, clean_input(ex.text, self.cfg.max_input_chars), said_at(ex.incoming, self.clock()))
            if self.overheard is not None:
                self.overheard(ex.session)

