"""Stage 4, compose: the prompt, stable prefix first, volatile parts after, within budget."""

from __future__ import annotations

from dataclasses import replace

from bot.config import LLMConfig, MemoryConfig
from bot.exchange import Exchange
from bot.llm import ChatMessage
from bot.lookup import Passage
from memory.text import estimate_tokens, truncate_tokens
from memory.turns import Turn
from persona.card import Persona
from persona.prompt import headings, stable_prompt


class Compose:
    """Builds [system: stable + volatile] [history...] [user: message] [system: reminder]."""

    def __init__(self, llm: LLMConfig, memory: MemoryConfig, knowledge_tokens: tuple[int, int]):
        self.llm = llm
        self.memory = memory
        self.passage_tokens, self.lore_tokens = knowledge_tokens
        self._stable: dict[str, str] = {}

    def stable(self, persona: Persona) -> str:
        """The persona's stable prefix, built once."""
        if persona.id not in self._stable:
            self._stable[persona.id] = stable_prompt(persona, self.llm.example_tokens)
        return self._stable[persona.id]

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill ex.prompt within context_tokens - max_tokens.

        Priority when space is short: the stable prefix and the message (at most half of what is
        left), recent turns (at most half again), the summary, facts, lore, passages and scenes.
        Turns that no longer fit go to the summary.
        """
        persona, group = ex.persona, not ex.incoming.is_direct
        h = headings(persona)
        who = ex.incoming.display_name or persona.card.user_alias
        stable = self.stable(persona)
        reminder = persona.render(persona.card.post_history_instructions.strip(), who)
        left = self.llm.context_tokens - self.llm.max_tokens - estimate_tokens(stable) - estimate_tokens(reminder) - 32
        message = _as_user_text(ex.text, who, group)
        message = truncate_tokens(message, max(64, min(estimate_tokens(message), left // 2)))
        left -= estimate_tokens(message)
        volatile: list[str] = []

        def block(title: str, body: str) -> None:
            nonlocal left
            if body:
                volatile.append(f"【{title}】\n{body}")
                left -= estimate_tokens(volatile[-1]) + 2

        history, kept = _fit(list(ex.history), max(0, min(self.memory.history_tokens, left // 2)), group)
        left -= sum(estimate_tokens(m.content) + 4 for m in history)
        block(h[4], truncate_tokens(ex.summary.text, max(0, min(self.memory.summary_tokens, left))))
        facts = "\n".join(f"- {f}" for f in ex.facts)
        block(h[5].format(who=who), truncate_tokens(facts, max(0, min(left // 4, 400))))
        block(h[6], _pack([*ex.lore], min(self.lore_tokens, left)))
        block(h[7], _pack([*ex.passages], min(self.passage_tokens, left)))
        block(h[8].format(char=persona.name), _pack([*ex.scenes], min(self.passage_tokens // 2, left)))
        system = "\n\n".join([stable, *volatile])
        messages = [ChatMessage("system", system), *history, ChatMessage("user", message)]
        if reminder:
            messages.append(ChatMessage("system", reminder))
        dropped = ex.history[: len(ex.history) - kept]
        return replace(ex, prompt=tuple(_merge(messages)), unsummarized=ex.unsummarized + dropped)


def _as_user_text(text: str, name: str, group: bool) -> str:
    return f"{name}: {text}" if group and name else text


def _pack(items: list[Passage], budget: int) -> str:
    out, used = [], 0
    for p in items:
        cost = estimate_tokens(p.text) + 2
        if used + cost > budget:
            continue
        out.append(p.text)
        used += cost
    return "\n---\n".join(out)


def _fit(turns: list[Turn], budget: int, group: bool) -> tuple[list[ChatMessage], int]:
    """Newest turns that fit, as chat messages, oldest first; and how many turns were kept."""
    out: list[ChatMessage] = []
    used = kept = 0
    for turn in reversed(turns):
        if turn.role == "assistant":
            msg = ChatMessage("assistant", turn.text)
        else:
            msg = ChatMessage("user", _as_user_text(turn.text, turn.name, group))
        cost = estimate_tokens(msg.content) + 4
        if used + cost > budget:
            break
        out.append(msg)
        used += cost
        kept += 1
    out.reverse()
    while out and out[0].role == "assistant":
        out.pop(0)
    return out, kept


def _merge(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Join consecutive user (or assistant) messages: chat templates expect alternation."""
    out: list[ChatMessage] = []
    for m in messages:
        if out and m.role == out[-1].role and m.role != "system":
            out[-1] = ChatMessage(m.role, out[-1].content + "\n" + m.content)
        else:
            out.append(m)
    return out
