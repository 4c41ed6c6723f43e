"""Platform-neutral chat commands; Discord slash commands and QQ matchers call these."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

from bot.app import App
from bot.pipeline.stages.recall import fact_line
from core.messages import Incoming
from core.sanitize import clean_text
from memory.age import ago
from memory.facts import conversation_of as facts_place
from memory.facts import forget
from memory.profiles import Item
from memory.profiles import line as item_line
from memory.turns import Fact, SessionKey
from persona.card import Persona
from persona.library import ID_PATTERN, PersonaError

MAX_CHAPTER = 100_000  # past any real source work: a bigger number is a slip of the keyboard
MAX_QUERY_CHARS = 200  # /lore looks up a name or a phrase, not an essay
MEMORY_ITEMS = 20  # /memory lists a user's newest timeline and profile items, at most this many
CITED_CHARS = 80  # /why shows this much of each memory, passage or lore entry
WHY_KINDS = (("memory", "memories"), ("fact", "facts"), ("summary", "summary"), ("lore", "lore"),
             ("passage", "source passages"), ("scene", "the character's own scenes"))


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's result: text for the user, and whether it succeeded."""

    text: str
    ok: bool = True


class BadArgument(ValueError):
    """A command argument that is malformed or out of range; the message says what to write."""


def _word(text: str) -> str:
    """One argument as typed: cleaned, full-width digits and letters made plain, lower case."""
    return unicodedata.normalize("NFKC", clean_text(text)).strip().lower()


def chapter_arg(text: str) -> int | None:
    """`/spoiler`'s argument: off, none or 0 lift the limit; else a chapter from 1 to MAX_CHAPTER."""
    word = _word(text)
    if word in ("off", "none", "0"):
        return None
    if re.fullmatch(r"[0-9]{1,6}", word) and 1 <= int(word) <= MAX_CHAPTER:
        return int(word)
    raise BadArgument(f"Usage: /spoiler N (a chapter from 1 to {MAX_CHAPTER}), or /spoiler off")


def percent_arg(text: str) -> int:
    """`/chance`'s argument: a whole percent from 0 to 100 ("30" or "30%")."""
    word = _word(text).removesuffix("%")
    if re.fullmatch(r"[0-9]{1,3}", word) and int(word) <= 100:
        return int(word)
    raise BadArgument("Usage: /chance PERCENT (a whole number from 0 to 100; 0 turns it off)")


def switch_arg(text: str, command: str) -> bool:
    """`on` or `off`, for /voice and /bots."""
    word = _word(text)
    if word in ("on", "off"):
        return word == "on"
    raise BadArgument(f"Usage: /{command} on|off")


def text_arg(text: str) -> str:
    """A free-text argument: cleaned, on one line."""
    return " ".join(clean_text(text).split())


def forget_arg(text: str) -> int | Literal["all"]:
    """`/forget`'s argument: a fact's number as `/memory` shows it, or `all`."""
    word = _word(text)
    if word == "all":
        return "all"
    if re.fullmatch(r"[0-9]{1,4}", word) and int(word) >= 1:
        return int(word)
    raise BadArgument("Usage: /forget N (a number /memory shows) or /forget all")


def _shown(text: str, limit: int = 40) -> str:
    """User text echoed in an answer: cleaned, on one line, cut short."""
    text = " ".join(clean_text(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


class Commands:
    """What admins and users can change about a conversation (permissions are the caller's job)."""

    def __init__(self, app: App):
        self.app = app

    async def personas(self) -> Answer:
        """Every persona: id and name."""
        lib = self.app.personas
        return Answer("\n".join(f"{pid} — {lib.get(pid).name}" for pid in lib.ids()))

    async def set_persona(self, msg: Incoming, pid: str) -> Answer:
        """Switch this conversation to another persona; answers with its greeting."""
        pid = _word(pid)
        known = ", ".join(self.app.personas.ids())
        if not ID_PATTERN.match(pid) or pid not in self.app.personas:
            return Answer(f"No persona '{_shown(pid)}'; choose one of: {known}", ok=False)
        try:
            persona = await self.app.conversations.set_persona(msg.conversation, pid)
        except PersonaError as exc:
            return Answer(str(exc), ok=False)
        greeting = persona.greetings()[0] if persona.greetings() else persona.name
        return Answer(persona.render(greeting, msg.display_name))

    async def reset(self, msg: Incoming) -> Answer:
        """Forget this conversation for everyone in it."""
        persona = await self.app.conversations.reset(msg)
        return Answer(f"{persona.name} forgot this conversation.")

    async def voice(self, msg: Incoming, on: bool) -> Answer:
        """Turn voice clips on or off here."""
        await self.app.conversations.update(msg.conversation, voice=on)
        return Answer(f"Voice {'on' if on else 'off'}.")

    async def spoiler(self, msg: Incoming, chapter: int | None) -> Answer:
        """Limit what the character knows to chapters up to `chapter` (None or 0 lifts the limit)."""
        if chapter is not None and not 0 <= chapter <= MAX_CHAPTER:
            return Answer(f"The chapter must be from 1 to {MAX_CHAPTER} (0 lifts the limit).", ok=False)
        # "off" (not a missing value) so a limit from config.toml is lifted too
        lifted = chapter is None or chapter <= 0
        await self.app.conversations.update(msg.conversation, max_chapter="off" if lifted else chapter)
        return Answer("Spoiler limit lifted." if lifted else f"Spoiler limit: chapter {chapter}.")

    async def chance(self, msg: Incoming, percent: int) -> Answer:
        """The chance, in percent, that the character joins in unasked here (0 turns it off)."""
        if not 0 <= percent <= 100:
            return Answer("The chance must be a whole percent from 0 to 100.", ok=False)
        await self.app.conversations.update(msg.conversation, chance=percent / 100)
        return Answer(f"Chance to join in unprompted: {percent}%.")

    async def bots(self, msg: Incoming, on: bool) -> Answer:
        """Whether other bots get answers here (with a fall-off)."""
        await self.app.conversations.update(msg.conversation, bots=on)
        return Answer(f"Answering other bots: {'on' if on else 'off'}.")

    async def initiative(self, msg: Incoming, on: bool) -> Answer:
        """Whether the character may speak first here after a quiet spell (within [initiative]'s caps)."""
        if on and msg.is_direct:
            return Answer("The character speaks first only in group channels.", ok=False)
        await self.app.conversations.update(msg.conversation, initiative=on)
        cfg = self.app.settings.initiative
        if not on:
            return Answer("Speaking first: off.")
        if cfg.max_per_day == 0:
            return Answer("Speaking first: on here, but [initiative] max_per_day is 0, so it never will.")
        return Answer(f"Speaking first: on (after {cfg.quiet_minutes:g} quiet minutes, at most {cfg.max_per_day} a day).")

    async def lore(self, msg: Incoming, query: str) -> Answer:
        """What the character would recall for `query` here (passages, lore, scenes), within the spoiler limit."""
        query = " ".join(clean_text(query).split())[:MAX_QUERY_CHARS]
        if not query:
            return Answer("Usage: /lore QUERY", ok=False)
        persona, settings, _ = await self.app.conversations.here(msg)
        found = await self.app.knowledge.lookup(persona, query, [], settings.max_chapter)
        items = [*found.lore, *found.passages, *found.scenes]
        if not items:
            return Answer("Nothing found.")
        return Answer("\n\n".join(f"[{p.kind}{' · ' + p.source if p.source else ''}] {p.text}" for p in items))

    async def stats(self, msg: Incoming) -> Answer:
        """Which persona, how much is remembered, which mode answers."""
        persona, settings, key = await self.app.conversations.here(msg)
        turns = await self.app.store.recent(key, self.app.settings.memory.max_turns)
        summary = await self.app.store.summary(key)
        model = self.app.answered_by
        voice = settings.voice if settings.voice is not None else self.app.settings.voice.enabled
        lines = [
            f"persona: {persona.id} ({persona.name})",
            f"remembered turns: {len(turns)}; summary: {'yes' if summary.text else 'no'}",
            f"model: {model}; memory: {self.app.store.name}",
            f"voice: {'on' if voice else 'off'}; spoiler limit: {settings.max_chapter or 'none'}",
        ]
        return Answer("\n".join(lines))

    def as_character(self, msg: Incoming, character: str | None) -> Incoming | None:
        """The message as if asked of `character` (persona id, name or nickname; in a scene, which of the
        characters answers); the message as it is when none is named; None for a name nobody has."""
        if not character:
            return msg
        word = _word(character).lstrip("@")
        found = self.app.personas.get(word) if word in self.app.personas else self.app.personas.find_by_name(word)
        return replace(msg, persona=found.id) if found is not None else None

    def _no_character(self, character: str | None) -> Answer:
        known = ", ".join(self.app.personas.ids())
        return Answer(f"No character '{_shown(character or '')}'; name one of: {known}", ok=False)

    async def _here(self, msg: Incoming) -> tuple[Persona, SessionKey]:
        """The persona speaking in the message's conversation, and that conversation's key."""
        persona, _, key = await self.app.conversations.here(msg)
        return persona, key

    async def _facts_here(self, persona: Persona, key: SessionKey, user_id: str) -> list[Fact]:
        """A user's facts as this conversation shows them (the numbering /memory and /forget use)."""
        book = await self.app.store.fact_book(persona.id, key.platform, user_id)
        return book.visible(facts_place(key), self.app.settings.memory.share_facts)

    async def _items_here(self, persona: Persona, key: SessionKey, user_id: str) -> list[Item]:
        """The newest of a user's timeline and profile items here, oldest first, less those forgotten (/memory numbers them after the facts)."""
        episodes = self.app.episodes
        book = await episodes.notebook(key) if episodes is not None else None
        if book is None:
            return []
        gone = (await self.app.store.fact_book(persona.id, key.platform, user_id)).forgotten.get(facts_place(key), ())
        return [item for item in book.of(user_id) if item.ident not in gone][-MEMORY_ITEMS:]

    async def memory(self, msg: Incoming, character: str | None = None) -> Answer:
        """What the character (`character`, else the one here) remembers about the asker (facts, then
        timeline and profile items, numbered) and this conversation's summary."""
        asked = self.as_character(msg, character)
        if asked is None:
            return self._no_character(character)
        persona, key = await self._here(asked)
        facts = await self._facts_here(persona, key, msg.user_id)
        items = await self._items_here(persona, key, msg.user_id)
        now, language = self.app.clocks.wall(), persona.card.language
        who = msg.display_name or "you"
        lines = [f"What {persona.name} remembers about {who}:"]
        lines += [f"{i}. {fact_line(f, now, language)}" for i, f in enumerate(facts, start=1)] or ["(nothing yet)"]
        if items:
            lines += ["", f"From what {who} said here (timeline and profile):"]
            lines += [f"{i}. {item_line(item, language)}" for i, item in enumerate(items, start=len(facts) + 1)]
        summary = await self.app.store.summary(key)
        lines += ["", "Story so far:" if summary.text else "Story so far: (no summary yet)"]
        if summary.text:
            lines.append(summary.text)
        if facts or items:
            lines += ["", f"/forget N or /forget all removes {'them' if items else 'facts'}."]
        return Answer("\n".join(lines))

    async def forget(self, msg: Incoming, which: int | Literal["all"], user_id: str = "",
                     character: str | None = None) -> Answer:
        """Remove one of a user's facts or timeline and profile items (by its /memory number), or all of them shown here.

        `user_id` names another user (an admin's request: permission is the caller's job);
        `character`, whose facts (in a scene, as /memory showed them).
        """
        asked = self.as_character(msg, character)
        if asked is None:
            return self._no_character(character)
        persona, key = await self._here(asked)
        target = user_id or msg.user_id
        facts = await self._facts_here(persona, key, target)
        items = await self._items_here(persona, key, target)
        whose = "you" if target == msg.user_id else "that user"
        if which == "all":
            drop, unsay = facts, items
        elif 1 <= which <= len(facts):
            drop, unsay = [facts[which - 1]], []
        elif len(facts) < which <= len(facts) + len(items):
            drop, unsay = [], [items[which - len(facts) - 1]]
        else:
            return Answer(f"There is nothing numbered {which} about {whose}; /memory lists them.", ok=False)
        if not drop and not unsay:
            return Answer(f"{persona.name} remembers nothing about {whose} here.")
        where = facts_place(key)
        await self.app.store.change_facts(persona.id, key.platform, target,
                                          lambda book: forget(book, drop, [i.ident for i in unsay], where))
        if which != "all":
            what = f"fact {which}" if drop else f"item {which}"
        else:
            what = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((len(drop), "fact"), (len(unsay), "item")) if n)
        return Answer(f"{persona.name} forgot {what} about {whose}.")

    async def why(self, msg: Incoming, character: str | None = None) -> Answer:
        """Which memories, facts, lore entries and passages the last reply here (of `character`, else
        of the character here) was given.

        Facts are shown only to the person that reply answered.
        """
        asked = self.as_character(msg, character)
        if asked is None:
            return self._no_character(character)
        persona, key = await self._here(asked)
        last = await self.app.store.last_context(key)
        if last is None:
            return Answer("No reply here yet to explain.")
        when = ago(last.at, self.app.clocks.wall(), "en") or "earlier"
        whose = f" of {persona.name}" if asked.persona else ""  # a character asked by name or by its account
        head = f"The last reply{whose} (to {last.name or last.user_id or 'someone'}, {when})"
        if last.mode != "model":
            return Answer(f"{head} was one of {persona.name}'s example lines; no model was asked, so it was given nothing.")
        # facts are about the person the reply answered: nobody else sees them
        cited = [c for c in last.cited if c.kind != "fact" or last.user_id == msg.user_id]
        withheld = len(last.cited) - len(cited)
        if not cited:
            if withheld:
                return Answer(f"{head} was given only the recent conversation and facts about them, which only they may see.")
            return Answer(f"{head} was given only the recent conversation: no memories, facts, lore or passages.")
        lines = [f"{head} was given:"]
        for kind, title in WHY_KINDS:
            items = [c for c in cited if c.kind == kind]
            if items:
                lines.append(f"{title}:")
                lines += [f"- {f'[{c.source}] ' if c.source else ''}{_shown(c.text, CITED_CHARS)}" for c in items]
        if withheld:
            lines.append("(and facts about them, which only they may see)")
        if last.tokens:
            lines.append("prompt tokens: " + ", ".join(f"{name} {n}" for name, n in last.tokens))
        return Answer("\n".join(lines))
