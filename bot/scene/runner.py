"""A scene at work: each human message handled once, the characters it calls on answering in turn.

Every line goes through the chain as today, one character at a time: the first speaker answers the
message, each later one answers the line before it (so its prompt holds that line, as a named
speaker), and the characters who do not take a line as their cue keep it in their memory
(memory/scene.py). One lock per scene keeps a message's whole round in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from bot.chain import Chain, SessionLocks
from bot.scene.once import Once
from bot.scene.policy import Floor, Line, Member, named
from core.config import BotConfig, SceneConfig
from core.messages import Incoming, Reply
from core.sanitize import clean_input
from memory.scene import character_user, line_of, record
from memory.turns import Turn
from persona.library import PersonaLibrary

Send = Callable[[Reply], Awaitable[object]]
DRAWS_KEPT = 10_000  # channels whose last drawn line is remembered (for the reply cooldown)


class Scenes:
    """Runs the scenes of every channel that has several characters."""

    def __init__(self, cfg: SceneConfig, bot: BotConfig, chain: Chain, personas: PersonaLibrary,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic,
                 chance: Callable[[], float] | None = None):
        self.cfg = cfg
        self.bot = bot
        self.chain = chain
        self.personas = personas
        self.wall = wall
        self.chance = chance
        self.once = Once(cfg.dedup_seconds, mono)
        self.locks = SessionLocks()
        self._drawn: OrderedDict[str, float] = OrderedDict()

    def first_copy(self, msg: Incoming) -> bool:
        """False for a copy of a message already taken (every account of a scene receives each one)."""
        return not msg.message_id or self.once.first(f"{msg.conversation.key}:{msg.message_id}")

    async def handle(self, msg: Incoming, cast: Sequence[str], send_as: Callable[[str], Send | None],
                     to: str = "") -> list[Reply]:
        """The characters' replies to one human message, each sent as it comes (`send_as(persona)`).

        `to`: the character the message @s or replies to (it alone answers).
        """
        members = [Member.of(self.personas.get(pid)) for pid in dict.fromkeys(cast) if pid in self.personas]
        ids = [m.id for m in members]
        where = msg.conversation
        async with self.locks.hold(where.key):
            settings = await self.chain.conversations.settings(where)
            chance = settings.chance if settings.chance is not None else self.bot.reply_chance
            floor = Floor(members, self.cfg.max_bot_turns, Line(msg.text, to=to), chance, self._draw(where.key))
            who = floor.next()
            called = {to} if to else set(named(msg.text, members))
            heard = Turn("user", clean_input(msg.text, self.bot.max_input_chars), msg.user_id, msg.display_name,
                         False, self.wall(), msg.message_id)
            if who and not called:
                self._drew(where.key)
            if heard.text:  # what each character does not answer itself, it keeps as the scene's context
                await asyncio.gather(*(record(self.chain.store, where, [pid], replace(heard, addressed=pid in called))
                                       for pid in ids if pid != who))
            replies: list[Reply] = []
            cue = replace(msg, persona=who, mentions_bot=True)
            while who:
                reply = await self.chain.handle(cue, send=send_as(who))
                if reply is None or not reply.text or reply.mode == "reaction":
                    break  # it stayed silent: the floor goes back to the people
                replies.append(reply)
                floor.said(who, reply.text)
                after = floor.next()
                line = line_of(who, reply.persona_name, reply.text, self.wall())
                await record(self.chain.store, where, [pid for pid in ids if pid not in (who, after)], line)
                cue = Incoming(msg.platform, msg.channel_id, character_user(who), reply.persona_name, reply.text,
                               bot_id=msg.bot_id, persona=after, mentions_bot=True, speaker=who, conversation=where)
                who = after
            return replies

    def _draw(self, key: str) -> Callable[[], float] | None:
        """The chance draws for an unaddressed message; None while the channel's reply cooldown runs."""
        if self.chance is None or self.wall() - self._drawn.get(key, float("-inf")) < self.bot.reply_cooldown_seconds:
            return None
        return self.chance

    def _drew(self, key: str) -> None:
        """A character spoke up unaddressed: the channel's reply cooldown starts."""
        self._drawn[key] = self.wall()
        self._drawn.move_to_end(key)
        while len(self._drawn) > DRAWS_KEPT:
            self._drawn.popitem(last=False)
