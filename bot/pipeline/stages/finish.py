"""Stage 6, finish: clean the draft, store the exchange atomically, note what it was given, schedule memory upkeep."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.pipeline.exchange import Exchange
from bot.pipeline.offline import Offline
from core.llm import ChatMessage
from core.messages import Reply, said_at
from core.stores import ReplyContexts, StoreError, TurnLog
from memory.recollections import speaker
from memory.summarizer import Summarizer
from memory.turns import Cited, LastContext, Turn

log = logging.getLogger(__name__)
LOOKBACK = 1_000  # turns before the window that the facts reader goes back over for a member (a bounded read)


class Finish:
    """Turns the draft into a Reply and remembers both sides of the exchange."""

    def __init__(
        self,
        store: TurnLog,
        replies: ReplyContexts,
        summarizer: Summarizer | None,
        offline: Offline,
        facts_every: int,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.replies = replies
        self.summarizer = summarizer
        self.offline = offline
        self.facts_every = facts_every
        self.clock = clock

    async def __call__(self, ex: Exchange) -> Exchange | None:
        """Fill ex.reply; the user's message and the reply are stored together."""
        persona, msg = ex.persona, ex.incoming
        text, mode = ex.draft.strip(), ex.mode  # generate has cleaned and checked model text
        if not text:
            text, mode = self.offline.line(persona, ex.text, msg.display_name, []), "fallback"
        now = self.clock()
        reply = Reply(text, persona.id, persona.name, mode, reply_to=msg.message_id)
        question = Turn("user", ex.text, msg.user_id, msg.display_name, True, said_at(msg, now), msg.message_id,
                        speaker=msg.speaker)
        answer = Turn("assistant", text, "", persona.name, True, now, partial=ex.partial)
        if msg.unprompted:  # the nudge is never stored; the character's remark is, when the model made it
            if mode == "model":
                await self.store.append(ex.session, [answer])
            return replace(ex, draft=text, mode=mode, reply=reply)
        stored = await self.store.append(ex.session, [question, answer])
        await self._remember_context(ex, mode, now, stored[1].seq)
        if self.summarizer and (mode == "model" or ex.heard):  # the server is up: what was said is still learnt
            after = _next_prefix(ex.prompt, text)
            asked = self.summarizer.fold(ex.session, persona, ex.summary, ex.unsummarized, after)
            # seq 0: the store is away and the exchange waits in memory; facts can wait too
            if stored[0].seq and not msg.speaker:  # facts are about members, never another character
                said = [t for t in ex.stored if t.user_id == msg.user_id and t.role == "user" and t.seq > ex.facts_noted]
                said.append(stored[0])
                # the window no longer reaches back to the read mark: what the member said before it is read from the archive
                gap = bool(ex.stored) and ex.stored[0].seq > ex.facts_noted + 1
                if gap or len(said) >= self.facts_every:
                    asked |= self.summarizer.note_facts(persona, ex.session, msg.user_id, msg.display_name, said, after,
                                                        since=max(ex.facts_noted, ex.stored[0].seq - LOOKBACK) if gap else None)
            self.summarizer.warm(ex.session, after, asked)
        return replace(ex, draft=text, mode=mode, reply=reply)

    async def _remember_context(self, ex: Exchange, mode: str, now: float, seq: int) -> None:
        """Keep what this reply was given (memories, facts, summary, lore, passages) for `/why`."""
        msg = ex.incoming
        cited: list[Cited] = []
        if ex.prompt:  # the model was given this prompt, even when its answer was replaced
            shown = "\n".join(m.content for m in ex.prompt)
            for rec in ex.recalled:
                who = speaker(rec.turn, ex.persona.name)
                cited.append(Cited("memory", rec.turn.text, f"{rec.age} · {who}" if rec.age else who))
            for fact, line in zip(ex.fact_records, ex.facts, strict=False):
                if fact.text in shown:
                    cited.append(Cited("fact", fact.text, line[len(fact.text):].strip(" ()（）")))
            if ex.summary.text and ex.summary.text[:40] in shown:
                cited.append(Cited("summary", ex.summary.text))
            for kind, items in (("lore", ex.lore), ("passage", ex.passages), ("scene", ex.scenes)):
                cited.extend(Cited(kind, p.text, p.source) for p in items if p.text in shown)
        record = LastContext(now, msg.user_id, msg.display_name, ex.text, mode, tuple(cited), seq, ex.sections)
        try:
            await self.replies.set_last_context(ex.session, record)
        except StoreError as exc:  # only /why misses it
            log.info("last context of %s not kept: %s", ex.session, exc)


def _next_prefix(prompt: Sequence[ChatMessage], reply: str) -> tuple[ChatMessage, ...]:
    """How the conversation's next prompt begins: this one less its closing reminder, then the reply.

    Background work asked after it finds it in the server's cache, and leaves it there for the next
    reply. Pictures are left out: the stored turn that the next prompt shows has none.
    """
    end = len(prompt)
    while end and prompt[end - 1].role == "system":
        end -= 1
    if not end:
        return ()
    return (*(replace(m, images=()) if m.images else m for m in prompt[:end]), ChatMessage("assistant", reply))
