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
        """Fill ex.prompt."""
        persona, group = ex.persona, not ex.incoming.is_direct
        h = headings(persona)
        who = ex.incoming.display_name or persona.card.user_alias
        volatile = []
        if ex.summary.text:
            volatile.append(f"【{h[4]}】\n{truncate_tokens(ex.summary.text, self.memory.summary_tokens)}")
        if ex.facts:
            volatile.append(f"【{h[5].format(who=who)}】\n" + "\n".join(f"- {f}" for f in ex.facts))
        lore = _pack([*ex.lore], self.lore_tokens)
        if lore:
            volatile.append(f"【{h[6]}】\n{lore}")
        passages = _pack([*ex.passages], self.passage_tokens)
        if passages:
            volatile.append(f"【{h[7]}】\n{passages}")
        scenes = _pack([*ex.scenes], self.passage_tokens // 2)
        if scenes:
            volatile.append(f"【{h[8].format(char=persona.name)}】\n{scenes}")
        system = "\n\n".join([self.stable(persona), *volatile])
        reminder = persona.render(persona.card.post_history_instructions.strip(), who)
        message = _as_user_text(ex.text, who, group)
        budget = self.llm.context_tokens - self.llm.max_tokens
        fixed = estimate_tokens(system) + estimate_tokens(reminder) + estimate_tokens(message) + 16
        if fixed > budget:
            message = truncate_tokens(message, max(64, budget - fixed + estimate_tokens(message)))
        history = _fit(list(ex.history), budget - fixed, group)
        messages = [ChatMessage("system", system), *history, ChatMessage("user", message)]
        if reminder:
            messages.append(ChatMessage("system", reminder))
        return replace(ex, prompt=tuple(_merge(messages)))


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


def _fit(turns: list[Turn], budget: int, group: bool) -> list[ChatMessage]:
    """Newest turns that fit, as chat messages, oldest first."""
    out: list[ChatMessage] = []
    used = 0
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
    out.reverse()
    while out and out[0].role == "assistant":
        out.pop(0)
    return out


def _merge(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Join consecutive user (or assistant) messages: chat templates expect alternation."""
    out: list[ChatMessage] = []
    for m in messages:
        if out and m.role == out[-1].role and m.role != "system":
            out[-1] = ChatMessage(m.role, out[-1].content + "\n" + m.content)
        else:
            out.append(m)
    return out
