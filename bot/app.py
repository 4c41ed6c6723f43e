"""The composition root: builds every client once, wires the pipeline, closes everything."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bot import metrics
from bot.background import Background
from bot.chain import Chain
from bot.config import Settings
from bot.exchange import Stage
from bot.llm import ChatModel, OpenAIChat
from bot.lookup import Knowledge
from bot.serving import ServerProfile
from bot.stages.compose import Compose
from bot.stages.finish import Finish
from bot.stages.gate import Gate
from bot.stages.generate import Generate, OfflineBook
from bot.stages.guard import Guard
from bot.stages.recall import Recall
from bot.stages.speak import Speak
from memory.knowledge import open_knowledge
from memory.open import open_store
from memory.store import ConversationStore
from memory.summarizer import Summarizer
from persona.library import PersonaError, PersonaLibrary
from voice import open_voice
from voice.base import Voice

log = logging.getLogger(__name__)


@dataclass
class Clocks:
    """Injected time and chance, so tests control them."""

    wall: Callable[[], float] = time.time
    mono: Callable[[], float] = time.monotonic
    chance: Callable[[], float] = random.random


@dataclass
class App:
    """Everything one bot process runs on."""

    settings: Settings
    store: ConversationStore
    personas: PersonaLibrary
    model: ChatModel | None
    knowledge: Knowledge
    voice: Voice | None
    background: Background
    chain: Chain
    clocks: Clocks = field(default_factory=Clocks)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        clocks: Clocks | None = None,
        knowledge: Knowledge | None = None,
        voice: Voice | None = None,
    ) -> AsyncIterator[App]:
        """Build the app; everything built here is closed on exit."""
        clocks = clocks or Clocks()
        personas = PersonaLibrary([*settings.personas.dirs, settings.personas.import_dir])
        if not personas.ids():
            raise PersonaError(f"no persona cards found in {', '.join(str(d) for d in settings.personas.dirs)}")
        store = await open_store(settings.memory)
        model: ChatModel | None = None
        if settings.llm.provider == "openai":
            model = OpenAIChat(settings.llm)
        knowledge = knowledge or await open_knowledge(settings)
        voice = voice or await open_voice(settings, model)
        background = Background()
        stages = build_pipeline(settings, store, model, knowledge, voice, background, clocks)
        chain = Chain(
            stages, store, personas, settings.bot.default_persona, settings.bot.merge_bursts,
            settings.knowledge.max_chapter, clocks.mono,
        )
        app = cls(settings, store, personas, model, knowledge, voice, background, chain, clocks)
        exporter: metrics.Exporter | None = None
        try:
            if settings.metrics.enabled:
                slots = model.slots if isinstance(model, OpenAIChat) else None
                exporter = metrics.serve(settings.metrics, slots, lambda: getattr(store, "available", True))
            yield app
        finally:
            if exporter is not None:
                exporter.close()
            await background.aclose()
            for closer in (knowledge.close, *([model.close] if model else []), *([voice.close] if voice else [])):
                try:
                    await closer()
                except Exception as exc:  # closing must go on
                    log.warning("closing: %s", exc)
            await store.close()


def build_pipeline(
    settings: Settings,
    store: ConversationStore,
    model: ChatModel | None,
    knowledge: Knowledge,
    voice: Voice | None,
    background: Background,
    clocks: Clocks,
) -> list[Stage]:
    """The message path, top to bottom (architecture.md)."""
    offline = OfflineBook()
    summarizer = Summarizer(settings.memory, store, model, background) if model else None
    k = settings.knowledge
    profile = model.profile if model else ServerProfile.configured(settings.llm)
    probe = model.probe if isinstance(model, OpenAIChat) else None
    compose = Compose(settings.llm, settings.memory, (k.passage_tokens, k.lore_tokens), profile, probe)
    return [
        Gate(settings.bot, store, clocks.wall, clocks.chance),
        Guard(settings.bot, store, clocks.wall),
        Recall(settings.memory, store, knowledge, clocks.wall),
        compose,
        Generate(settings.llm, model, offline, clocks.mono, compose, compose.reply_cap),
        Finish(store, summarizer, offline, settings.memory.facts_every, clocks.wall),
        Speak(voice, settings.voice.enabled, background),
    ]
