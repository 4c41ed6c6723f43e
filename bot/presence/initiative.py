"""Speaking first: a remark on the last topic after a quiet spell, or a greeting at set times.

Only in group channels where an admin typed `/initiative on`; never more than [initiative]
max_per_day a day in a channel (counted in the store, so every bot process shares the count), and
never twice in a row without a human message between. The character's words come from the
ordinary pipeline: the "message" it answers is a stage direction (a nudge in the persona's
language) that is shown to the model but never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from bot.pipeline.chain import Chain
from bot.pipeline.exchange import ChannelSettings
from core.config import InitiativeConfig
from core.conversation import Conversation
from core.messages import Incoming, Reply
from core.outlet import ClipTask, Outlet, Poster
from core.stores import Counters, StoreError
from persona.lines import in_language

log = logging.getLogger(__name__)

Kind = Literal["remark", "greeting"]
DAY = 24 * 3600.0

NUDGE: dict[Kind, dict[str, str]] = {
    "remark": {
        "zh": "（群里安静了好一阵。你想起刚才大家聊的话题，主动开口说一句，像平时聊天那样自然。）",
        "en": "(The chat has been quiet for a while. You think back to what was being talked about and say something about it, casually, unprompted.)",
        "ja": "（しばらく静かだった。さっきの話題を思い出して、自然に自分から一言話しかける。）",
    },
    "greeting": {
        "zh": "（现在是{time}。你主动跟群里的大家打个招呼，说一两句。）",
        "en": "(It is {time}. You greet everyone in the channel, unprompted, in a sentence or two.)",
        "ja": "（今は{time}。自分からみんなに一言あいさつする。）",
    },
}


@dataclass
class Watch:
    """What the scheduler knows of one conversation: when someone last spoke and whether it was the character."""

    conversation: Conversation
    bot_id: str
    last_at: float
    mine: bool = False
    capped_on: str = ""  # the local day whose cap is spent here


class Watchlist:
    """The chain's observer: the opted-in group conversations, who spoke there last, and when."""

    def __init__(self, wall: Callable[[], float] = time.time):
        self.wall = wall
        self.watched: dict[str, Watch] = {}

    def seen(self, msg: Incoming, settings: ChannelSettings) -> None:
        """Every message of a group (called by the chain): who spoke last, and when."""
        if msg.is_direct or msg.unprompted:
            return
        key = msg.conversation.key
        if not settings.initiative:
            self.watched.pop(key, None)
            return
        self.watched[key] = Watch(msg.conversation, msg.bot_id, self.wall(), mine=msg.is_self)

    def spoke(self, where: Conversation) -> None:
        """The character said something here (a reply or a remark of its own)."""
        watch = self.watched.get(where.key)
        if watch is not None:
            watch.last_at, watch.mine = self.wall(), True


class FirstWords:
    """The outlet for a line the character starts: only the model's own words go out, whole (an
    example line out of the blue would be odd; nobody waits for it, so no preview, voice or emoji)."""

    def __init__(self, outlet: Outlet):
        self.outlet = outlet

    def placed(self, position: int) -> None:
        """Nobody waits for this one."""

    async def partial(self, text: str) -> None:
        """No preview: the line may yet be replaced by an example line, which is never posted."""

    async def send(self, reply: Reply) -> None:
        """The model's words, posted; anything else stays unsaid."""
        if reply.mode == "model" and reply.text:
            await self.outlet.send(reply)

    async def react(self, emoji: str) -> None:
        """Nothing to react to."""

    async def voice(self, clip: ClipTask) -> None:
        """Text only: the clip is left to finish on its own."""


class Initiative:
    """Lets the character speak first in the conversations its watchlist follows, when one is due."""

    def __init__(
        self,
        cfg: InitiativeConfig,
        counters: Counters,
        chain: Chain,
        watchlist: Watchlist,
        posters: Mapping[str, Poster],
        wall: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        self.counters = counters
        self.chain = chain
        self.conversations = chain.conversations
        self.watchlist = watchlist
        self.posters = dict(posters)  # per platform, an outlet into a conversation nobody just wrote in
        self.wall = wall
        self.zone = zoneinfo.ZoneInfo(cfg.timezone) if cfg.timezone else None
        self._last_tick = wall()

    @property
    def watched(self) -> dict[str, Watch]:
        """The conversations followed, by key."""
        return self.watchlist.watched

    async def run(self) -> None:
        """Look at the watched conversations every `check_seconds` until cancelled (tests call `tick`)."""
        while True:
            await asyncio.sleep(self.cfg.check_seconds)
            try:
                await self.tick()
            except StoreError as exc:  # memory is away: try again at the next look
                log.warning("initiative check skipped: %s", exc)

    async def tick(self) -> list[Conversation]:
        """Speak where it is due now; returns where the character spoke."""
        now, since = self.wall(), self._last_tick
        self._last_tick = now
        greeting = self._greeting_between(since, now)
        spoke = []
        for watch in list(self.watched.values()):
            kind: Kind | None = "greeting" if greeting else None
            if kind is None and now - watch.last_at >= self.cfg.quiet_minutes * 60:
                kind = "remark"
            if kind is None or watch.mine or watch.conversation.platform not in self.posters:
                continue
            if await self._speak(watch, kind, greeting or ""):
                spoke.append(watch.conversation)
        return spoke

    def _local(self, at: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, self.zone) if self.zone else dt.datetime.fromtimestamp(at).astimezone()

    def _greeting_between(self, since: float, now: float) -> str | None:
        """The greeting time ("08:30") passed since the last look, if one was."""
        if now <= since:
            return None
        start, end = self._local(since), self._local(now)
        for hhmm in self.cfg.greetings:
            hour, minute = map(int, hhmm.split(":"))
            for day in {start.date(), end.date()}:
                moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=end.tzinfo)
                if start < moment <= end:
                    return hhmm
        return None

    async def _speak(self, watch: Watch, kind: Kind, hhmm: str) -> bool:
        """Say something unprompted if the channel still wants it and today's cap allows."""
        where = watch.conversation
        settings = await self.conversations.settings(where)
        if not settings.initiative:
            self.watched.pop(where.key, None)
            return False
        day = self._local(self.wall()).date().isoformat()
        if watch.capped_on == day:
            return False
        if self.cfg.max_per_day <= 0 or not await self.counters.rate_hit(
            f"initiative:{where.key}:{day}", DAY, self.cfg.max_per_day
        ):
            watch.capped_on = day  # no need to ask the store again today
            return False
        persona = self.conversations.persona_for(Incoming(where.platform, where.id, "", "", ""), settings)
        nudge = in_language(NUDGE[kind], persona.card.language).format(time=hhmm)
        msg = Incoming(where.platform, where.id, "", "", nudge, mentions_bot=True, bot_id=watch.bot_id,
                       unprompted=kind, conversation=where)
        outlet = await self.posters[where.platform](where, watch.bot_id)
        if outlet is None:
            log.warning("cannot post into %s now; not speaking first there", where.key)
            return False
        reply = await self.chain.handle(msg, FirstWords(outlet))
        if reply is None or reply.mode != "model":
            return False  # the model is down: an example line out of the blue would be odd
        self.watchlist.spoke(where)
        log.info("spoke first in %s (%s)", where.key, kind)
        return True


@contextlib.asynccontextmanager
async def running(initiative: Initiative) -> AsyncIterator[Initiative]:
    """The initiative loop for as long as the app runs (nothing when max_per_day is 0)."""
    task = asyncio.create_task(initiative.run(), name="initiative") if initiative.cfg.max_per_day > 0 else None
    try:
        yield initiative
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
