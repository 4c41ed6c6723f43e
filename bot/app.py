"""The composition root: builds every client once, wires the pipeline, closes everything."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bot import metrics
from bot.pipeline.chain import Chain
from bot.pipeline.conversations import Conversations
from bot.pipeline.exchange import Stage
from bot.pipeline.offline import Offline
from bot.pipeline.replay import Replay
from bot.pipeline.stages.compose import Compose
from bot.pipeline.stages.finish import Finish
from bot.pipeline.stages.gate import Gate
from bot.pipeline.stages.generate import Generate
from bot.pipeline.stages.guard import Guard
from bot.pipeline.stages.listen import Listen
from bot.pipeline.stages.look import Look
from bot.pipeline.stages.recall import Recall
from bot.pipeline.stages.speak import Speak
from bot.presence.initiative import Initiative, Watchlist, running
from bot.scene.runner import Scenes
from core.background import Background
from core.config import Settings
from core.fetch import FetchPolicy
from core.files import private_dir
from core.images import ImageGate
from core.knowledge import Knowledge
from core.llm import ChatModel, OpenAIChat
from core.outlet import Poster
from core.serving import ServerProfile
from memory.episodes import EpisodicMemory
from memory.knowledge import open_knowledge
from memory.knowledge.embedders import open_embedder
from memory.open import open_store
from memory.recall_dense import open_dense
from memory.store import ConversationStore, StoreError
from memory.summarizer import Summarizer
from persona.card import Persona
from persona.library import PersonaError, PersonaLibrary
from voice import open_voice
from voice.base import Voice
from voice.hearing import Transcriber

log = logging.getLogger(__name__)
UPKEEP_GRACE = 10.0  # seconds closing gives memory upkeep at least, within docker-compose.yml's 15 s over drain_seconds


@dataclass
class Clocks:
    """Injected time, waiting and chance, so tests control them (no test sleeps for real)."""

    wall: Callable[[], float] = time.time
    mono: Callable[[], float] = time.monotonic
    chance: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass
class App:
    """Everything one bot process runs on."""

    settings: Settings
    store: ConversationStore
    personas: PersonaLibrary
    model: ChatModel | None
    knowledge: Knowledge[Persona]
    voice: Voice | None
    background: Background
    chain: Chain
    initiative: Initiative
    replay: Replay
    scenes: Scenes  # the channels with several characters: each message's round, each copy taken once
    clocks: Clocks = field(default_factory=Clocks)
    episodes: EpisodicMemory | None = None  # older turns and members' notebooks, searchable (None: recall is off)
    stopping_since: float | None = None  # when a stop began to drain (monotonic)

    @property
    def answered_by(self) -> str:
        """Who answers: the model's name, or the offline responder."""
        return self.model.name if self.model else "offline (example lines)"

    @property
    def conversations(self) -> Conversations:
        """Each conversation's persona and settings."""
        return self.chain.conversations

    async def drain(self, force: Callable[[], bool] = lambda: False) -> None:
        """Stop taking messages; those in hand get [bot] drain_seconds to be answered (less once
        `force()` is true); the rest stay journaled and are answered after the next start."""
        self.stopping_since = self.clocks.mono()
        await self.replay.stop()
        in_hand = self.chain.in_hand
        if in_hand:
            log.info("stopping: answering %d message(s) in hand (up to %g s)", in_hand, self.settings.bot.drain_seconds)
        stopped = await self.chain.drain(self.settings.bot.drain_seconds, force)
        if stopped:
            log.info("stopping: %d message(s) not answered in time stay journaled for the next start", stopped)

    def upkeep_grace(self) -> float:
        """How long closing waits for memory upkeep (summaries, facts): what a stop left of [bot] drain_seconds
        after the messages in hand, at least UPKEEP_GRACE; cut work is asked again later, nothing is lost."""
        spent = self.clocks.mono() - self.stopping_since if self.stopping_since is not None else 0.0
        return max(UPKEEP_GRACE, self.settings.bot.drain_seconds - spent)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        clocks: Clocks | None = None,
        knowledge: Knowledge[Persona] | None = None,
        voice: Voice | None = None,
        posters: Mapping[str, Poster] | None = None,
    ) -> AsyncIterator[App]:
        """Build the app; everything built here is closed on exit.

        `posters` (per platform) are how the fronts that run reach a conversation nobody just wrote
        in, for the character to speak first; the fronts that start them build them (a platform
        without one is never spoken into unprompted)."""
        clocks = clocks or Clocks()
        personas = PersonaLibrary.configured(settings.personas)
        if not personas.ids():
            raise PersonaError(f"no persona cards found in {', '.join(str(d) for d in settings.personas.dirs)}")
        if unknown := sorted({p for p in settings.qq.accounts.values() if p not in personas}):
            raise PersonaError(f"[qq] accounts: no persona card {', '.join(unknown)} (known: {', '.join(personas.ids())})")
        try:
            private_dir(settings.bot.data_dir)  # 0700 when made here: memory, logs and voice clips are private
        except OSError as exc:
            raise StoreError(f"{settings.bot.data_dir}: cannot create the data folder: {exc.strerror}") from None
        store = await open_store(settings.memory)
        model: ChatModel | None = None
        if settings.llm.provider == "openai":
            model = OpenAIChat(settings.llm)
        # one embedder (if any) for knowledge and memory recall: one model in memory, one connection pool
        embedder = open_embedder(settings.knowledge) if settings.knowledge.mode != "bm25" else None
        knowledge = knowledge or await open_knowledge(settings, embedder)
        voice = voice or await open_voice(settings, model)
        background = Background()
        dense = open_dense(settings.memory, settings.knowledge, settings.bot.data_dir, background, clocks.mono, embedder)
        if dense is not None:
            dense.warm_up()  # a model loads for seconds (torch's import alone): not on the first message's time
        policy = FetchPolicy.configured(settings.fetch)  # one policy for all a message makes the bot fetch
        listen = Listen(Transcriber(settings.voice), policy)
        look = Look(ImageGate(settings.llm, policy), model.profile, model.probe if isinstance(model, OpenAIChat) else None) \
            if model else None
        m = settings.memory
        # one memory of older turns: the gate hands it what it overhears, recall searches it, /memory reads it
        episodes = EpisodicMemory(store.turns, keep_turns=m.max_turns + m.archive_turns, retention_days=m.archive_days, dense=dense,
                                  background=background, notes=m.profile_tokens > 0) if m.recall_tokens > 0 else None
        stages = build_pipeline(settings, store, model, knowledge, voice, background, clocks, episodes, listen, look)
        conversations = Conversations(store.channel_settings, store.turns, personas, settings.bot.default_persona, settings.knowledge.max_chapter,
                                      clocks.mono)
        watchlist = Watchlist(clocks.wall)  # the chain tells it every message and reply; speaking first reads it
        chain = Chain(stages, store.journal, store.turns, store.counters, conversations, settings.bot, clocks.mono, clocks.wall, observers=[watchlist])
        initiative = Initiative(settings.initiative, store.counters, chain, watchlist, posters or {}, clocks.wall)
        replay = Replay(chain.ledger, settings.bot.replay_minutes, clocks.wall)
        scenes = Scenes(settings.scene, settings.bot, chain, personas, clocks.wall, clocks.mono, clocks.chance, background)
        app = cls(settings, store, personas, model, knowledge, voice, background, chain, initiative, replay, scenes,
                  clocks, episodes)
        exporter: metrics.Exporter | None = None
        try:
            if settings.metrics.enabled:
                slots = model.slots if isinstance(model, OpenAIChat) else None
                exporter = metrics.serve(settings.metrics, slots, lambda: getattr(store, "available", True),
                                         dense.backlog if dense else None)
            # what start-up built lives as long as the app: kept out of the cyclic collector's scans, so
            # a full collection walks only what messages made (on a busy process it stalled every reply)
            gc.freeze()
            async with replay.running(), running(initiative):
                try:
                    yield app
                finally:
                    await chain.drain(0.0)  # nothing still in hand outlives the clients; it stays journaled
        finally:
            gc.unfreeze()
            if exporter is not None:
                exporter.close()
            await background.aclose(app.upkeep_grace())
            for closer in (*([dense.close] if dense else []), listen.close, *([look.close] if look else []), knowledge.close, *([model.close] if model else []),
                           *([voice.close] if voice else [])):
                try:
                    await closer()
                except Exception as exc:  # closing must go on
                    log.warning("closing: %s", exc)
            if embedder is not None:
                embedder.close()
            await store.close()


def build_pipeline(
    settings: Settings,
    store: ConversationStore,
    model: ChatModel | None,
    knowledge: Knowledge[Persona],
    voice: Voice | None,
    background: Background,
    clocks: Clocks,
    episodes: EpisodicMemory | None = None,
    listen: Listen | None = None,
    look: Look | None = None,
) -> list[Stage]:
    """The message path, top to bottom (architecture.md)."""
    offline = Offline()
    summarizer = Summarizer(settings.memory, store.summaries, store.facts_store, model, background, store.turns) if model else None
    k = settings.knowledge
    profile = model.profile if model else ServerProfile.configured(settings.llm)
    probe = model.probe if isinstance(model, OpenAIChat) else None
    compose = Compose(settings.llm, settings.memory, (k.passage_tokens, k.lore_tokens), profile, probe)
    return [
        Gate(settings.bot, store.turns, clocks.wall, clocks.chance, episodes.overheard if episodes else None),
        *([listen] if listen else []),  # voice messages the character answers become text
        *([look] if look else []),  # and pictures go to a model that can see them
        Guard(settings.bot, store.turns, clocks.wall, settings.initiative.react_chance, clocks.chance),
        Recall(settings.memory, store.turns, store.summaries, store.facts_store, knowledge, clocks.wall, episodes),
        compose,
        # the offline responder answers when no model is configured, and stands in when the model fails
        Generate(settings.llm, model, offline, clocks.mono, compose, compose.reply_cap,
                 settings.bot.max_queue_seconds) if model else offline,
        Finish(store.turns, store.replies, summarizer, offline, settings.memory.facts_every, clocks.wall),
        Speak(voice, settings.voice.enabled, background),
    ]
