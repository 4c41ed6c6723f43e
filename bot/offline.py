"""The offline responder: the character answers with its best-matching example line."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from memory.text import SmallBM25, lexical_tokens
from persona.card import Example, Persona


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
