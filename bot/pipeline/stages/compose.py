"""Stage 4, compose: the prompt as an append-only transcript, so each prompt extends the last one."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from bot.checks.defects import conversation_language
from bot.pipeline.exchange import Exchange
from core.config import LLMConfig, MemoryConfig
from core.knowledge import Passage, pack
from core.llm import ChatMessage
from core.serving import MESSAGE_OVERHEAD, ServerProfile
from core.text import truncate_tokens
from memory.notebook import heading as notes_heading
from memory.notebook import render as render_notes
from memory.quoting import FENCE, THEM, attributed, quote
from memory.recollections import Recollection
from memory.recollections import heading as remember_heading
from memory.recollections import render as render_memories
from memory.turns import SessionKey, Turn
from persona.card import Persona
from persona.prompt import headings, length_hint, stable_prompt

STABLE_SHARE = 0.6  # at most this share of the prompt room goes to the persona's stable prefix
SAFETY = 16  # tokens kept free for the template's own start and end markers
STARTS_KEPT = 10_000  # conversations whose window start is remembered
NOTES_KEPT = 2_000  # conversations whose shown context is remembered (a few kB each)


@dataclass(frozen=True, slots=True)
class Note:
    """The context one message was given (summary, facts, memories, lore, passages, scenes), as shown."""

    text: str = ""
    keys: frozenset[str] = frozenset()  # what it shows: "s:" summary, "f:" fact, "k:" knowledge text, "n:" item
    memories: frozenset[int] = frozenset()  # seqs of the older turns its memories show
    cost: int = 0  # tokens as the server counts them, message overhead included
    memory: int = 0  # tokens of its memory blocks (summary, facts, recalled turns, items): [memory] memory_tokens
    sections: tuple[tuple[str, int], ...] = ()  # (summary, facts, memories, notes, lore, passages, scenes): tokens each


@dataclass
class _Shown:
    """One conversation's notes still in its transcript, and the note of the message being answered."""

    notes: dict[int, Note] = field(default_factory=dict)  # user turn seq -> the note shown just before it
    pending: tuple[str, str, Note] | None = None  # (message id, text, note): its seq comes when it is stored
    upto: int = 0  # the newest seq the last prompt saw; the pending message is stored after it


class Compose:
    """Builds [system: stable] ([system: note] [user] [assistant])... [system: note] [user] [system: reminder].

    Serving-aware layout, as agent runtimes keep tool results in the thread (Manus "context
    engineering": stable prefix, append-only context, deterministic serialization; Anthropic's
    context editing: clear old tool results in bulk, never a little every turn). The stable prefix
    depends only on the card and the server's context. Each message's retrieved context (its
    note) sits just before that message and stays there with it, byte for byte, so the next
    prompt is the last one less the reminder plus the reply, a new note and the new message: the
    server's prefix cache reuses everything else. A new note shows only what the transcript does
    not show already (a passage, fact, memory or summary seen two turns ago is still in view), so
    the model sees what it did before, and more of it.

    Changes happen in large steps, never a little every turn: the window of turns keeps its first
    turn until full, then restarts with the newest half; when the earlier notes and the new one
    no longer fit beside the turns, the earlier notes are dropped all at once. Notes live in this
    process (a restart, or another process answering, costs one prompt of cache, nothing else).
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
        # per persona id: (the card it was made from, budget and counts, the text); an edited card is a new one
        self._stable: dict[str, tuple[Persona, tuple[int, float, float], str]] = {}
        self._starts: OrderedDict[SessionKey, int] = OrderedDict()
        self._shown: OrderedDict[SessionKey, _Shown] = OrderedDict()

    def reply_cap(self) -> int:
        """max_tokens for a reply: the configured cap, at most a third of the server's context."""
        return max(16, min(self.llm.max_tokens, self.profile.context // 3))

    def room(self) -> int:
        """Tokens the prompt may use."""
        return self.profile.context - self.reply_cap() - SAFETY

    def stable(self, persona: Persona) -> str:
        """The persona's stable prefix for this server: the same bytes every turn."""
        budget = int(self.room() * STABLE_SHARE)
        shape = (budget, self.profile.per_cjk, self.profile.per_other)
        cached = self._stable.get(persona.id)
        if cached is None or cached[0] is not persona or cached[1] != shape:
            cached = self._stable[persona.id] = (persona, shape, stable_prompt(
                persona, self.llm.example_tokens, self.profile.count, budget))
        return cached[2]

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill ex.prompt so that, as the server counts, prompt + reply cap fit its context.

        Priority when space is short: the stable prefix and the message (at most half of what is
        left), recent turns (at most half again), this message's note (summary, facts, memories,
        lore, passages, scenes), then the notes earlier turns were given. Turns that no longer fit
        go to the summary.
        """
        if self.probe is not None:
            await self.probe()  # the server's context and tokenizer, learned on first use
        count = self.profile.count
        persona, group = ex.persona, not ex.incoming.is_direct
        who = ex.incoming.display_name or persona.card.user_alias
        stable = self.stable(persona)
        # the character's rules name no member: a display name is anyone's text, shown only as data
        reminder = persona.render(persona.card.post_history_instructions.strip())
        said = [t.text for t in ex.history if t.role == "user"]
        hint = length_hint(persona, group, conversation_language(ex.text, said, bool(ex.incoming.unprompted),
                                                                 persona.card.language))
        reminder = f"{reminder}\n{hint}".strip()  # last, so the prefix stays the same
        left = self.room() - count(stable) - MESSAGE_OVERHEAD
        if reminder:
            left -= count(reminder) + MESSAGE_OVERHEAD
        message = _as_user_text(ex.text, who, group)
        message = truncate_tokens(message, max(16, min(count(message), left // 2)), count)
        left -= count(message) + MESSAGE_OVERHEAD + len(ex.images) * self.profile.image_tokens
        turns, dropped = self._window(ex.session, list(ex.history), min(self.memory.history_tokens, left // 2), group)
        window = self._cost(turns, group)
        left -= window
        in_window = {t.seq for t in turns}
        past = self._past(ex, in_window)
        facts_now = {f"f:{rec.text if rec else line}"
                     for rec, line in zip((*ex.fact_records, *[None] * len(ex.facts)), ex.facts, strict=False)}
        if any((k.startswith("f:") and k not in facts_now) or (k[2:] in ex.forgotten and k.startswith("n:"))
               for n in past.values() for k in n.keys):
            past = {}  # a fact or item an earlier note shows was updated or forgotten: nothing stale stays in view
        note, recalled = self._note(ex, left, in_window, Note())
        held = sum(n.cost for n in past.values())
        if past and (held > left - note.cost or sum(n.memory for n in past.values()) + note.memory > self.memory.memory_tokens):
            past, held = {}, 0  # no room beside the new note: the earlier notes go at once
        if past:  # again, leaving out what the earlier notes show
            seen = Note(keys=frozenset().union(*(n.keys for n in past.values())),
                        memories=frozenset().union(*(n.memories for n in past.values())))
            note, recalled = self._note(ex, left - held, in_window, seen)
            recalled += [r for r in ex.memories if r.turn.seq in seen.memories and r not in recalled]
        self._remember(ex, past, note)
        messages = [ChatMessage("system", stable)]
        for turn in turns:
            if turn.seq in past:
                messages.append(ChatMessage("system", past[turn.seq].text))
            messages.append(_message(turn, group))
        if note.text:
            messages.append(ChatMessage("system", note.text))
        messages.append(ChatMessage("user", message, images=ex.images))
        if reminder:
            messages.append(ChatMessage("system", reminder))
        sections = (("system", count(stable)), ("turns", window), ("earlier notes", held), *note.sections,
                    ("message", count(message)), ("reminder", count(reminder) if reminder else 0))
        return replace(ex, prompt=tuple(_merge(messages)), unsummarized=ex.unsummarized + tuple(dropped),
                       recalled=tuple(recalled), sections=tuple((name, n) for name, n in sections if n))

    def _note(self, ex: Exchange, budget: int, in_window: set[int], seen: Note) -> tuple[Note, list[Recollection]]:
        """This message's context within `budget` tokens, without what `seen` shows; the memories it holds.

        What people said, and what was learned from them (summary, facts, memories), is fenced and
        quoted line by line with who said it: data for the character, never its rules.
        """
        count = self.profile.count
        persona = ex.persona
        h = headings(persona)
        lang = "zh" if persona.card.language.startswith("zh") else "en"
        who = ex.incoming.display_name or persona.card.user_alias
        head, tail = FENCE[lang]
        quoted: list[str] = []
        parts: list[str] = []
        sizes: list[tuple[str, int]] = []
        left = budget - MESSAGE_OVERHEAD
        fence = count(head) + count(tail) + 4
        if ex.summary.text or ex.facts or ex.memories or ex.notes:
            left -= fence

        memory = self.memory.memory_tokens  # what the memory blocks together may still take

        def block(name: str, title: str, body: str, into: list[str], cap: int | None = None) -> None:
            nonlocal left, memory
            if body and left > 0:
                text = truncate_tokens(f"【{title}】\n{body}", left if cap is None else min(left, cap), count)
                into.append(text)
                sizes.append((name, count(text)))
                left -= sizes[-1][1] + 2
                if cap is not None:
                    memory -= sizes[-1][1]

        summary = "" if f"s:{ex.summary.text}" in seen.keys else ex.summary.text
        summary = quote(truncate_tokens(summary, max(0, min(self.memory.summary_tokens, left, memory - 8)), count))
        block("summary", h[4], summary, quoted, memory)
        named = [(rec.text if rec else line, attributed(who, rec, line))
                 for rec, line in zip((*ex.fact_records, *[None] * len(ex.facts)), ex.facts, strict=False)]
        facts = "\n".join(line for fact, line in named if f"f:{fact}" not in seen.keys)
        block("facts", h[5].format(who=THEM[lang]),
              truncate_tokens(facts, max(0, min(self.memory.facts_tokens, left // 2)), count), quoted, memory)
        title = remember_heading(persona.card.language)
        notes_title = notes_heading(persona.card.language)
        # the timelines and profiles keep their share: the recalled turns take what is left of the memory budget
        reserve = min(self.memory.profile_tokens, max(0, memory // 3)) + count(notes_title) + 8 if ex.notes else 0
        room = min(self.memory.recall_tokens, left - count(title) - 8 - reserve, memory - count(title) - 8 - reserve)
        # each recalled line is counted as it is shown, quoted ("> "): the budget is used, never overrun
        remembered, recalled = render_memories(
            ex.memories, max(0, room), lambda text: count(quote(text)), persona.name, persona.card.language,
            in_window | seen.memories,
        )
        block("memories", title, quote(remembered), quoted, memory)
        # what members told of themselves, less what the recalled turns and the window show whole
        whole = in_window | seen.memories | {t.seq for r in recalled for t in (r.before, r.turn, r.after) if t is not None}
        room = min(self.memory.profile_tokens, left - count(notes_title) - 8, memory - count(notes_title) - 8)
        told, noted = render_notes([i for i in ex.notes if f"n:{i.ident}" not in seen.keys], max(0, room * 9 // 10),
                                   count, persona.card.language, whole)
        block("notes", notes_title, quote(told), quoted, memory)
        used_memory = self.memory.memory_tokens - memory
        if quoted:
            parts = [head, *quoted, tail]
        elif ex.summary.text or ex.facts or ex.memories or ex.notes:
            left += fence
        block("lore", h[6], self._pack(ex.lore, min(self.lore_tokens, left), seen.keys), parts)
        block("passages", h[7], self._pack(ex.passages, min(self.passage_tokens, left), seen.keys), parts)
        block("scenes", h[8].format(char=persona.name), self._pack(ex.scenes, min(self.passage_tokens // 2, left), seen.keys), parts)
        text = "\n\n".join(parts)
        if not text:
            return Note(), []
        keys = {f"s:{ex.summary.text}"} if summary and summary[:40] in text else set()
        keys.update(f"f:{fact}" for fact, line in named if line in text)
        keys.update(f"k:{p.text}" for p in (*ex.lore, *ex.passages, *ex.scenes) if p.text in text)
        keys.update(f"n:{item.ident}" for item in noted)
        memories = {t.seq for r in recalled for t in (r.before, r.turn, r.after) if t is not None}
        note = Note(text, frozenset(keys), frozenset(memories), count(text) + MESSAGE_OVERHEAD, used_memory, tuple(sizes))
        return note, recalled

    def _past(self, ex: Exchange, in_window: set[int]) -> dict[int, Note]:
        """The notes earlier turns in the window were given (the last message's, now that it is stored)."""
        shown = self._shown.get(ex.session)
        if shown is None:
            return {}
        if shown.pending is not None:
            message_id, text, note = shown.pending
            stored = next((t for t in reversed(ex.history) if t.seq > shown.upto and t.role == "user"
                           and t.text == text and t.message_id == message_id), None)
            if stored is not None:
                shown.notes[stored.seq] = note
        return {seq: note for seq, note in shown.notes.items() if seq in in_window}

    def _remember(self, ex: Exchange, past: dict[int, Note], note: Note) -> None:
        """Keep the notes this prompt shows, and this message's until its turn is stored."""
        shown = self._shown.pop(ex.session, None) or _Shown()
        shown.notes = dict(past)
        shown.pending = (ex.incoming.message_id, ex.text, note) if note.text else None
        shown.upto = max((t.seq for t in ex.history), default=shown.upto)
        self._shown[ex.session] = shown
        while len(self._shown) > NOTES_KEPT:
            self._shown.popitem(last=False)

    def _window(
        self, key: SessionKey, turns: list[Turn], budget: int, group: bool
    ) -> tuple[list[Turn], list[Turn]]:
        """Recent turns, and the turns left out (oldest first).

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
            while len(self._starts) > STARTS_KEPT:
                self._starts.popitem(last=False)
        first = kept[0].seq if kept else None
        dropped = [t for t in turns if first is None or t.seq < first]
        return kept, dropped

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

    def _pack(self, items: tuple[Passage, ...], budget: int, seen: frozenset[str]) -> str:
        fresh = [p for p in items if f"k:{p.text}" not in seen]
        return "\n---\n".join(p.text for p in pack(fresh, budget, self.profile.count))


def _from_user(turns: list[Turn]) -> list[Turn]:
    """The turns from the first user turn on (a window never opens with the character speaking)."""
    first = next((i for i, t in enumerate(turns) if t.role == "user"), len(turns))
    return turns[first:]


def _as_user_text(text: str, name: str, group: bool) -> str:
    # a message's further lines are indented under its speaker: none can pose as another speaker's "name: ..."
    return f"{name}: " + text.replace("\n", "\n  ") if group and name else text


def _message(turn: Turn, group: bool) -> ChatMessage:
    if turn.role == "assistant":
        return ChatMessage("assistant", turn.text)
    # another character's line in a scene: always a named speaker, never the character's own reply
    return ChatMessage("user", _as_user_text(turn.text, turn.name, group or bool(turn.speaker)))


def _merge(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Join consecutive user (or assistant) messages: chat templates expect alternation."""
    out: list[ChatMessage] = []
    for m in messages:
        if out and m.role == out[-1].role and m.role != "system":
            out[-1] = ChatMessage(m.role, out[-1].content + "\n" + m.content, images=out[-1].images + m.images)
        else:
            out.append(m)
    return out
