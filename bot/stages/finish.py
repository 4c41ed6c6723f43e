"""Stage 6, finish: clean the draft, store the exchange atomically, schedule memory upkeep."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from bot.exchange import Exchange
from bot.messages import Reply
from bot.stages.generate import OfflineBook
from memory.store import ConversationStore
from memory.summarizer import Summarizer
from memory.turns import Turn

log = logging.getLogger(__name__)


class Finish:
    """Turns the draft into a Reply and remembers both sides of the exchange."""

    def __init__(
        self,
        store: ConversationStore,
        summarizer: Summarizer | None,
        offline: OfflineBook,
        facts_every: int,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.summarizer = summarizer
        self.offline = offline
        self.facts_every = facts_every
        self.clock = clock

    async def __call__(self, ex: Exchange) -> Exchange | None:
        """Fill ex.reply; the user's message and the reply are stored together."""
        persona, msg = ex.persona, ex.incoming
        text, mode = ex.draft.strip(), ex.mode  # generate has cleaned and checked model text
        if not text:
            text, mode = self.offline.answer(persona, ex.text, msg.display_name, []), "fallback"
        now = self.clock()
        stored = await self.store.append(
            ex.session,
            [
                Turn("user", ex.text, msg.user_id, msg.display_name, True, now, msg.message_id),
                Turn("assistant", text, "", persona.name, True, now, partial=ex.partial),
            ],
        )
        if self.summarizer and mode == "model":
            self.summarizer.fold(ex.session, persona, ex.summary, ex.unsummarized)
            # seq 0: the store is away and the exchange waits in memory; facts can wait too
            if stored[0].seq and ((stored[0].seq + 1) // 2) % self.facts_every == 0:
                said = [t.text for t in (*ex.history, stored[0]) if t.user_id == msg.user_id][-self.facts_every :]
                self.summarizer.note_facts(persona, msg.platform, msg.user_id, msg.display_name, said)
        reply = Reply(text, persona.id, persona.name, mode, reply_to=msg.message_id)
        return replace(ex, draft=text, mode=mode, reply=reply)
