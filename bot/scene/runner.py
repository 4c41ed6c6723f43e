"""A scene at work: each human message handled once, the characters it calls on answering in turn.

Every line goes through the chain as today, one character at a time, out through that character's
own outlet (core/outlet.py: on QQ its account, on Discord its webhook name): the first speaker
answers the message, each later one answers the line before it (so its prompt holds that line, as a
named speaker), and the characters who do not take a line as their cue keep it in their memory
(memory/scene.py). One lock per scene keeps a message's whole round in order; the voice clips
follow once every line of the round is out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from bot.pipeline.chain import Chain, SessionLocks
from bot.scene.once import Once
from bot.scene.policy import Floor, Line, Member, named
from core.background import Background
from core.config import BotConfig, SceneConfig
from core.messages import Incoming, Reply, said_at
from core.outlet import ClipTask, Outlet
from core.sanitize import clean_input
from memory.journal import Route
from memory.scene import Keeper, character_user, line_of
from memory.turns import Turn
from persona.library import PersonaLibrary

DRAWS_KEPT = 10_000  # channels whose last drawn line is remembered (for the reply cooldown)


class Held:
    """A character's outlet within a round: all goes through at once but its voice clip, which waits
    until the round's last line is out (a clip takes seconds; the next character need not wait)."""

    def __init__(self, outlet: Outlet, clips: list[tuple[Outlet, ClipTask]]):
        self.outlet = outlet
        self.clips = clips  # the round's clips, in the order of its lines (shared by its characters)

    def placed(self, position: int) -> None:
        """As the character's outlet."""
        self.outlet.placed(position)

    async def partial(self, text: str) -> None:
        """As the character's outlet."""
        await self.outlet.partial(text)

    async def send(self, reply: Reply) -> None:
        """As the character's outlet."""
        await self.outlet.send(reply)

    async def react(self, emoji: str) -> None:
        """As the character's outlet."""
        await self.outlet.react(emoji)

    async def voice(self, clip: ClipTask) -> None:
        """Kept for after the round."""
        self.clips.append((self.outlet, clip))


class Scenes:
    """Runs the scenes of every channel that has several characters."""

    def __init__(self, cfg: SceneConfig, bot: BotConfig, chain: Chain, personas: PersonaLibrary,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic,
                 chance: Callable[[], float] | None = None, background: Background | None = None):
        self.cfg = cfg
        self.bot = bot
        self.chain = chain
        self.personas = personas
        self.wall = wall
        self.chance = chance
        self.once = Once(cfg.dedup_seconds, mono)
        self.locks = SessionLocks()
        self._drawn: OrderedDict[str, float] = OrderedDict()
        self.background = background  # where a round's last memory writes finish (without it, the round waits)
        self._keepers: dict[str, Keeper] = {}  # per channel, while it has lines on their way

    def first_copy(self, msg: Incoming, keys: Sequence[str] = ()) -> bool:
        """False for a copy of a message already taken (every account of a scene receives each one).

        `keys`: what names the message alike on every account (the front knows; the first is its own);
        without them, its message id."""
        if keys:
            return self.once.first(*keys)
        return not msg.message_id or self.once.first(f"{msg.conversation.key}:{msg.message_id}")

    async def handle(self, msg: Incoming, cast: Sequence[str], outlets: Mapping[str, Outlet],
                     to: str = "", routes: Mapping[str, Route] | None = None) -> list[Reply]:
        """The characters' replies to one human message, each posted as it comes through its
        character's outlet (`outlets[persona]`; a character without one is not posted), then the
        voice clips in the order of the lines.

        `to`: the character the message @s or replies to (it alone answers). `routes`: how each
        character's front reaches the message after a restart (the journal keeps the first speaker's).
        """
        clips: list[tuple[Outlet, ClipTask]] = []
        try:
            held = {pid: Held(o, clips) for pid, o in outlets.items()}
            replies = await self._round(msg, cast, held, to, routes or {})
        except BaseException:
            for _, clip in clips:
                clip.cancel()
            raise
        for outlet, clip in clips:
            await outlet.voice(clip)
        return replies

    async def _round(self, msg: Incoming, cast: Sequence[str], held: Mapping[str, Held], to: str,
                     routes: Mapping[str, Route]) -> list[Reply]:
        """The round itself, in the scene's turn.

        What the characters who do not speak now keep of each line is written while the next one
        speaks (memory/scene.py Keeper), so no speaker waits on the others' memories, only on its own;
        the round's last line is written after it (the channel's next round waits for it where it must).
        """
        members = [Member.of(self.personas.get(pid)) for pid in dict.fromkeys(cast) if pid in self.personas]
        ids = [m.id for m in members]
        where = msg.conversation
        settings = await self.chain.conversations.settings(where)  # read outside the turn: kept briefly
        chance = settings.chance if settings.chance is not None else self.bot.reply_chance
        async with self.locks.hold(where.key):
            keeper = self._keepers.setdefault(where.key, Keeper(self.chain.turns, where))
            keeper.rounds += 1
            try:
                return await self._lines(msg, members, ids, held, to, routes, chance, keeper)
            finally:
                keeper.rounds -= 1
                if not keeper.idle and self.background is not None:
                    self.background.spawn(self._settle(where.key, keeper), name=f"scene memories of {where.key}")
                else:
                    await keeper.close()
                    self._keepers.pop(where.key, None)

    async def _settle(self, key: str, keeper: Keeper) -> None:
        """The channel's lines written; its keeper let go once no round uses it."""
        await keeper.close()
        if not keeper.rounds and self._keepers.get(key) is keeper:
            del self._keepers[key]

    async def settle(self) -> None:
        """Every scene line kept so far is in the characters' memories."""
        for keeper in list(self._keepers.values()):
            await keeper.close()

    async def _lines(self, msg: Incoming, members: list[Member], ids: list[str], held: Mapping[str, Held], to: str,
                     routes: Mapping[str, Route], chance: float, keeper: Keeper) -> list[Reply]:
        """Who speaks, line after line, until the floor goes back to the people."""
        where = msg.conversation
        floor = Floor(members, self.cfg.max_bot_turns, Line(msg.text, to=to), chance, self._draw(where.key))
        who = floor.next()
        called = {to} if to else set(named(msg.text, members))
        heard = Turn("user", clean_input(msg.text, self.bot.max_input_chars), msg.user_id, msg.display_name,
                     False, said_at(msg, self.wall()), msg.message_id)
        if who and not called:
            self._drew(where.key)
        if heard.text:  # what each character does not answer itself, it keeps as the scene's context
            keeper.keep({pid: replace(heard, addressed=pid in called) for pid in ids if pid != who})
        replies: list[Reply] = []
        cue, route = replace(msg, persona=who, mentions_bot=True), routes.get(who)
        while who:
            await keeper.ready(who)
            reply = await self.chain.handle(cue, held.get(who), route)
            if reply is None or not reply.text or reply.mode == "reaction":
                break  # it stayed silent: the floor goes back to the people
            replies.append(reply)
            floor.said(who, reply.text)
            after = floor.next()
            line = line_of(who, reply.persona_name, reply.text, self.wall())
            keeper.keep(dict.fromkeys((pid for pid in ids if pid not in (who, after)), line))
            cue = Incoming(msg.platform, msg.channel_id, character_user(who), reply.persona_name, reply.text,
                           bot_id=msg.bot_id, persona=after, mentions_bot=True, speaker=who, conversation=where)
            who, route = after, None
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
