"""Stage 3, recall: the conversation window, summary, user facts and knowledge."""

from __future__ import annotations

from dataclasses import replace

from bot.config import MemoryConfig
from bot.exchange import Exchange
from bot.lookup import Knowledge
from memory.store import ConversationStore
from memory.text import estimate_tokens
from memory.turns import Turn


def select_window(
    turns: list[Turn], after: int, budget: int, context_limit: int
) -> tuple[list[Turn], list[Turn]]:
    """Split turns newer than `after` into (window, older ones still to be summarized).

    The window is the newest run that fits the token budget, holding at most `context_limit`
    unaddressed group messages.
    """
    fresh = [t for t in turns if t.seq > after]
    window: list[Turn] = []
    used = context = 0
    cut = 0
    for i in range(len(fresh) - 1, -1, -1):
        turn = fresh[i]
        cost = estimate_tokens(turn.text) + estimate_tokens(turn.name) + 4
        if used + cost > budget:
            cut = i + 1
            break
        if not turn.addressed:
            context += 1
            if context > context_limit:
                continue
        window.append(turn)
        used += cost
    window.reverse()
    return window, fresh[:cut]


class Recall:
    """Loads what the character remembers and knows for this message."""

    def __init__(self, cfg: MemoryConfig, store: ConversationStore, knowledge: Knowledge):
        self.cfg = cfg
        self.store = store
        self.knowledge = knowledge

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill history, summary, facts, passages, lore and scenes."""
        turns = await self.store.recent(ex.session, self.cfg.max_turns)
        summary = await self.store.summary(ex.session)
        # a generous window: compose fits it to the server's context in its own tokens
        window, older = select_window(
            turns, summary.upto, self.cfg.history_tokens * 4, self.cfg.group_context_turns
        )
        facts: list[str] = []
        if self.cfg.facts:
            facts = await self.store.facts(ex.persona.id, ex.incoming.platform, ex.incoming.user_id)
        recent_text = [t.text for t in window]  # the lorebook cuts this to its scan depth
        found = await self.knowledge.lookup(ex.persona, ex.text, recent_text, ex.settings.max_chapter)
        return replace(
            ex,
            history=tuple(window),
            unsummarized=tuple(older),
            summary=summary,
            facts=tuple(facts),
            passages=found.passages,
            lore=found.lore,
            scenes=found.scenes,
        )
