"""Stage 4, compose: the prompt, stable prefix first, volatile parts after, within the server's context."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.config import LLMConfig, MemoryConfig
from bot.exchange import Exchange
from bot.llm import ChatMessage
from bot.lookup import Passage
from bot.serving import MESSAGE_OVERHEAD, ServerProfile
from memory.episodes import heading as remember_heading
from memory.episodes import render as render_memories
from memory.text import truncate_tokens
from memory.turns import SessionKey, Turn
from persona.card import Persona
from persona.prompt import headings, stable_prompt

STABLE_SHARE = 0.6  # at most this share of the prompt room goes to the persona's stable prefix
SAFETY = 16  # tokens kept free for the template's own start and end markers


class Compose:
    """Builds [system: stable] [history...] [system: context] [user: message] [system: reminder].

    The stable prefix depends only on the card and the server's context, and the window of
    recent turns starts at the same turn until it is full, so consecutive prompts of a
    conversation share everything up to the newest turns (the server's prefix cache reuses it).
    """

    def __init__(
        self,
        llm: LLMConfig,
        memory: MemoryConfig,
        knowledge_tokens: tuple[int, int],
        profile: ServerProfile,
        probe: Callable[[], Awaitable[object]] | None = None,
    ):
        self.llm = llm
        self.memory = memory
        self.profile = profile
        self.probe = probe
        self.passage_tokens, self.lore_tokens = knowledge_tokens
        self._stable: dict[tuple[str, int, float, float], str] = {}
        self._starts: OrderedDict[SessionKey, int] = OrderedDict()

    def reply_cap(self) -> int:
        """max_tokens for a reply: the configured cap, at most a third of the server's context."""
        return max(16, min(self.llm.max_tokens, self.profile.context // 3))

    def room(self) -> int:
        """Tokens the prompt may use."""
        return self.profile.context - self.reply_cap() - SAFETY

    def stable(self, persona: Persona) -> str:
        """The persona's stable prefix for this server: the same bytes every turn."""
        budget = int(self.room() * STABLE_SHARE)
        key = (persona.id, budget, self.profile.per_cjk, self.profile.per_other)
        if key not in self._stable:
            self._stable[key] = stable_prompt(persona, self.llm.example_tokens, self.profile.count, budget)
        return self._stable[key]

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill ex.prompt so that, as the server counts, prompt + reply cap fit its context.

        Priority when space is short: the stable prefix and the message (at most half of what is
        left), recent turns (at most half again), the summary, facts, lore, passages and scenes.
        Turns that no longer fit go to the summary.
        """
        if self.probe is not None:
            await self.probe()  # the server's context and tokenizer, learned on first use
        count = self.profile.count
        persona, group = ex.persona, not ex.incoming.is_direct
        h = headings(persona)
        who = ex.incoming.display_name or persona.card.user_alias
        stable = self.stable(persona)
        reminder = persona.render(persona.card.post_history_instructions.strip(), who)
        left = self.room() - count(stable) - MESSAGE_OVERHEAD
        if reminder:
            left -= count(reminder) + MESSAGE_OVERHEAD
        message = _as_user_text(ex.text, who, group)
        message = truncate_tokens(message, max(16, min(count(message), left // 2)), count)
        left -= count(message) + MESSAGE_OVERHEAD
        history, dropped = self._window(ex.session, list(ex.history), min(self.memory.history_tokens, left // 2), group)
        left -= sum(count(m.content) + MESSAGE_OVERHEAD for m in history) + MESSAGE_OVERHEAD
        volatile: list[str] = []

        def block(title: str, body: str) -> None:
            nonlocal left
            if body and left > 0:
                text = truncate_tokens(f"【{title}】\n{body}", left, count)
                volatile.append(text)
                left -= count(text) + 2

        block(h[4], truncate_tokens(ex.summary.text, max(0, min(self.memory.summary_tokens, left)), count))
        facts = "\n".join(f"- {f}" for f in ex.facts)
        block(h[5].format(who=who), truncate_tokens(facts, max(0, min(left // 4, 400)), count))
        title = remember_heading(persona.card.language)
        in_window = {t.seq for t in ex.history} - {t.seq for t in dropped}
        remembered, recalled = render_memories(
            ex.memories, max(0, min(self.memory.recall_tokens, left - count(title) - 8)), count,
            persona.name, persona.card.language, in_window,
        )
        block(title, remembered)
        block(h[6], self._pack([*ex.lore], min(self.lore_tokens, left)))
        block(h[7], self._pack([*ex.passages], min(self.passage_tokens, left)))
        block(h[8].format(char=persona.name), self._pack([*ex.scenes], min(self.passage_tokens // 2, left)))
        messages = [ChatMessage("system", stable), *history]
        if volatile:
            messages.append(ChatMessage("system", "\n\n".join(volatile)))
        messages.append(ChatMessage("user", message))
        if reminder:
            messages.append(ChatMessage("system", reminder))
        return replace(ex, prompt=tuple(_merge(messages)), unsummarized=ex.unsummarized + tuple(dropped),
                       recalled=tuple(recalled))

    def _window(
        self, key: SessionKey, turns: list[Turn], budget: int, group: bool
    ) -> tuple[list[ChatMessage], list[Turn]]:
        """Recent turns as chat messages, and the turns left out (oldest first).

        The window keeps its first turn while everything from there fits; when it overflows it
        restarts with the newest turns filling half the budget, so it moves in large steps.
        """
        start = self._starts.get(key, 0)
        kept = _from_user([t for t in turns if t.seq >= start])
        if self._cost(kept, group) > budget:
            kept = _from_user(self._newest(turns, budget // 2, group)) or _from_user(self._newest(turns, budget, group))
        if kept:
            self._starts[key] = kept[0].seq
            self._starts.move_to_end(key)
            while len(self._starts) > 10_000:
                self._starts.popitem(last=False)
        first = kept[0].seq if kept else None
        dropped = [t for t in turns if first is None or t.seq < first]
        return [_message(t, group) for t in kept], dropped

    def _cost(self, turns: list[Turn], group: bool) -> int:
        return sum(self.profile.count(_message(t, group).content) + MESSAGE_OVERHEAD for t in turns)

    def _newest(self, turns: list[Turn], budget: int, group: bool) -> list[Turn]:
        out: list[Turn] = []
        used = 0
        for turn in reversed(turns):
            cost = self._cost([turn], group)
            if used + cost > budget:
                break
            out.append(turn)
            used += cost
        out.reverse()
        return out

    def _pack(self, items: list[Passage], budget: int) -> str:
        out, used = [], 0
        for p in items:
            cost = self.profile.count(p.text) + 2
            if used + cost > budget:
                continue
            out.append(p.text)
            used += cost
        return "\n---\n".join(out)


def _from_user(turns: list[Turn]) -> list[Turn]:
    """The turns from the first user turn on (a window never opens with the character speaking)."""
    first = next((i for i, t in enumerate(turns) if t.role == "user"), len(turns))
    return turns[first:]


def _as_user_text(text: str, name: str, group: bool) -> str:
    return f"{name}: {text}" if group and name else text


def _message(turn: Turn, group: bool) -> ChatMessage:
    if turn.role == "assistant":
        return ChatMessage("assistant", turn.text)
    return ChatMessage("user", _as_user_text(turn.text, turn.name, group))


def _merge(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Join consecutive user (or assistant) messages: chat templates expect alternation."""
    out: list[ChatMessage] = []
    for m in messages:
        if out and m.role == out[-1].role and m.role != "system":
            out[-1] = ChatMessage(m.role, out[-1].content + "\n" + m.content)
        else:
            out.append(m)
    return out
