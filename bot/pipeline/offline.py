"""The offline responder: the character answers with its best-matching example line.

It stands beside the model: the answering stage when no model is configured, and the fallback
when the model fails.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from bot.pipeline.exchange import Exchange
from core.knowledge import Passage
from core.text import SmallBM25, lexical_tokens
from persona.card import Example, Persona

log = logging.getLogger(__name__)
_SCENE_LINE = re.compile(r"「(.+?)」")


class OfflineResponder:
    """Lexical retrieval over a persona's example exchanges (and greetings for hellos)."""

    def __init__(self, persona: Persona):
        self.persona = persona
        self.examples: list[Example] = persona.examples()
        user_side = [lexical_tokens(e.user) for e in self.examples]
        char_side = [lexical_tokens(e.char) for e in self.examples]
        self._by_user = SmallBM25(user_side)
        self._by_char = SmallBM25(char_side)
        self._vocab = {t for doc in (*user_side, *char_side) for t in doc}

    def answer(self, text: str, user: str, avoid: Sequence[str] = ()) -> str:
        """The reply line that best matches `text`, skipping lines said recently."""
        lines = self.ranked(text)
        recent = set(avoid)
        for line in lines:
            rendered = self.persona.render(line, user)
            if rendered not in recent:
                return rendered
        return self.persona.render(lines[0], user) if lines else self.persona.name + "……"

    def matches(self, text: str) -> bool:
        """True when some example shares a word (a CJK bigram or a Latin word) with the text.

        A shared single character is too weak to call it a match: then a retrieved scene line fits better.
        """
        return any(t in self._vocab for t in lexical_tokens(text) if len(t) > 1)

    def ranked(self, text: str) -> list[str]:
        """Candidate lines, best first; with no lexical match, a stable pseudo-random order."""
        if not self.examples:
            return self.persona.greetings()
        q = lexical_tokens(text)
        by_user = self._by_user.scores(q)
        by_char = self._by_char.scores(q)
        scored = [(u + 0.3 * c, i) for i, (u, c) in enumerate(zip(by_user, by_char, strict=True))]
        matched = sorted((s for s in scored if s[0] > 0), reverse=True)
        order = [i for _, i in matched]
        seed = int(hashlib.sha1(text.encode()).hexdigest(), 16)
        rest = [i for i in range(len(self.examples)) if i not in set(order)]
        rest.sort(key=lambda i: (i * 2654435761 + seed) % 4294967296)
        return [self.examples[i].char for i in order + rest]


class Offline:
    """One offline responder per persona, built on first use; as a stage it answers every message."""

    def __init__(self) -> None:
        self._by_id: dict[str, OfflineResponder] = {}

    def _responder(self, persona: Persona) -> OfflineResponder:
        if persona.id not in self._by_id or self._by_id[persona.id].persona is not persona:
            self._by_id[persona.id] = OfflineResponder(persona)
        return self._by_id[persona.id]

    def line(
        self, persona: Persona, text: str, user: str, avoid: list[str], scenes: Sequence[Passage] = ()
    ) -> str:
        """The persona's best-matching example line, else its own line from a retrieved scene."""
        responder = self._responder(persona)
        if scenes and not responder.matches(text):
            for scene in scenes:
                line = _SCENE_LINE.search(scene.text)
                if line and line.group(1) not in avoid:
                    return line.group(1)
        return responder.answer(text, user, avoid)

    async def __call__(self, ex: Exchange) -> Exchange:
        """Answer with an example line (no model is configured)."""
        return await self.answer(ex, "offline")

    async def answer(self, ex: Exchange, mode: Literal["offline", "fallback"], shown: bool = False) -> Exchange:
        """Fill ex.draft with the persona's line for this message (streamed to the sink, after a newline
        when part of a failed model reply was already shown)."""
        avoid = [t.text for t in ex.history if t.role == "assistant"][-8:]
        line = self.line(ex.persona, ex.text, ex.incoming.display_name, avoid, ex.scenes)
        if ex.sink:
            await ex.sink(("\n" if shown else "") + line)
        log.info("reply in %s mode (example line)", mode)
        return replace(ex, draft=line, mode=mode)
