"""The chain's intake: what becomes of a message before it takes its place in its conversation.

It comes first and costs little, so that a flood costs almost nothing: the conversation's persona
and settings (one store read), whether the character is spoken to, and the member's rate limit. A
member over `[bot] rate_limit_per_minute` is set aside here: the message is kept as context (one
store write) with one in-character notice a minute, and is neither journaled nor queued, so it
waits behind nothing and nothing waits behind it. A message the character will not answer (group
chatter nobody addressed to it, where no chance to join in is set) is not journaled either: the
journal keeps what is to be answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.pipeline.addressing import addressed, keep_message
from bot.pipeline.conversations import Conversations
from bot.pipeline.exchange import ChannelSettings
from core.config import BotConfig
from core.messages import Incoming, Reply, said_at
from core.sanitize import clean_input
from core.stores import Counters, TurnLog
from memory.turns import SessionKey
from persona.card import Persona
from persona.lines import canned

log = logging.getLogger(__name__)

WINDOW = 60.0  # seconds: rate_limit_per_minute counts over this, and one notice at most per window
# seconds a member found over the limit is set aside without asking the store again: a flood costs
# one store call a second, and a freed slot is taken at most this late (never more than the limit)
OVER_FOR = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a message goes: its conversation's persona and settings, and whether it may be answered."""

    persona: Persona
    settings: ChannelSettings
    session: SessionKey
    answerable: bool  # the character may answer it: it is journaled as it takes its place
    set_aside: bool = False  # over the member's rate limit: kept as context, nothing more
    notice: Reply | None = None  # set aside with the window's one notice


class Intake:
    """Decides each message's way in: to its conversation's turn (journaled or not), or set aside."""

    def __init__(self, cfg: BotConfig, store: TurnLog, counters: Counters, conversations: Conversations,
                 clock: Callable[[], float], wall: Callable[[], float]):
        self.cfg = cfg
        self.store = store
        self.counters = counters
        self.conversations = conversations
        self.clock = clock
        self.wall = wall  # stamps the messages kept as context
        self._over: dict[str, float] = {}  # member -> until when they count as over the limit

    async def __call__(self, msg: Incoming) -> Verdict:
        """The message's verdict: the persona, and whether it goes on, journaled, or is set aside."""
        persona, settings, session = await self.conversations.here(msg)
        spoken_to = addressed(msg, msg.text, persona)
        chance = settings.chance if settings.chance is not None else self.cfg.reply_chance
        verdict = Verdict(persona, settings, session, answerable=spoken_to or chance > 0)
        # the terminal, the character's own remarks and a scene's characters' lines ([scene] max_bot_turns
        # bounds those) are never limited
        if not spoken_to or msg.platform == "terminal" or msg.unprompted or msg.is_self or msg.speaker:
            return verdict
        who = f"{msg.platform}:{msg.user_id}"
        known_over = self._over.get(who, 0.0) > self.clock()
        if not known_over and await self.counters.rate_hit(who, WINDOW, self.cfg.rate_limit_per_minute):
            return verdict
        if not known_over:
            self._note_over(who)
        await keep_message(self.store, session, msg, clean_input(msg.text, self.cfg.max_input_chars),
                           said_at(msg, self.wall()))
        notice = None
        if not known_over and await self.counters.rate_hit(f"notice:{who}", WINDOW, 1):
            log.info("rate limit: %s sent more than %d in a minute; told once, the rest is kept as context",
                     who, self.cfg.rate_limit_per_minute)
            notice = canned(persona, "rate_limited", msg)
        return Verdict(persona, settings, session, answerable=False, set_aside=True, notice=notice)

    def _note_over(self, who: str) -> None:
        now = self.clock()
        if len(self._over) > 10_000:  # members who stopped long ago are forgotten
            self._over = {k: until for k, until in self._over.items() if until > now}
        self._over[who] = now + OVER_FOR
