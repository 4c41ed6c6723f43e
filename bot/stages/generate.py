"""Stage 5, generate: the model, streamed, with a deadline; offline lines when it can't answer."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.cleaning import StreamCleaner
from bot.config import LLMConfig
from bot.exchange import Exchange
from bot.llm import ChatModel, LLMError
from bot.lookup import Passage
from bot.offline import OfflineResponder
from persona.card import Persona

log = logging.getLogger(__name__)
_SCENE_LINE = re.compile(r"「(.+?)」")


class OfflineBook:
    """One offline responder per persona, built on first use."""

    def __init__(self) -> None:
        self._by_id: dict[str, OfflineResponder] = {}

    def _responder(self, persona: Persona) -> OfflineResponder:
        if persona.id not in self._by_id or self._by_id[persona.id].persona is not persona:
            self._by_id[persona.id] = OfflineResponder(persona)
        return self._by_id[persona.id]

    def answer(
        self, persona: Persona, text: str, user: str, avoid: list[str], scenes: Sequence[Passage] = ()
    ) -> str:
        """The persona's best-matching example line, else its own line from a retrieved scene."""
        responder = self._responder(persona)
        if scenes and not responder.matches(text):
            for scene in scenes:
                line = _SCENE_LINE.search(scene.text)
                if line and line.group(1) not in avoid:
                    return line.group(1)
        return responder.answer(text, user, avoid)


class Generate:
    """Streams the model's reply into ex.draft; falls back to offline lines on failure."""

    def __init__(
        self,
        cfg: LLMConfig,
        model: ChatModel | None,
        offline: OfflineBook,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.model = model
        self.offline = offline
        self.clock = clock
        self._down_until = float("-inf")

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill ex.draft and ex.mode."""
        if self.model is None:
            return await self._offline(ex, "offline")
        if self.clock() < self._down_until:
            return await self._offline(ex, "fallback")
        cleaner = StreamCleaner([ex.persona.name, *ex.persona.card.nickname])
        parts: list[str] = []
        try:
            async with asyncio.timeout(self.cfg.deadline):
                async for delta in self.model.stream(ex.prompt):
                    parts.append(delta)
                    shown = cleaner.feed(delta)
                    if shown and ex.sink:
                        await ex.sink(shown)
        except (LLMError, TimeoutError) as exc:
            reason = "deadline passed" if isinstance(exc, TimeoutError) else str(exc)
            if not "".join(parts).strip():
                self._down_until = self.clock() + self.cfg.retry_after
                log.warning("model failed (%s); answering offline for %.0fs", reason, self.cfg.retry_after)
                return await self._offline(ex, "fallback")
            log.warning("model stopped mid-reply (%s); keeping the partial reply", reason)
        rest = cleaner.flush()
        if rest and ex.sink:
            await ex.sink(rest)
        self._down_until = float("-inf")
        log.info("reply by model %s (%d chars)", self.model.name, len("".join(parts)))
        return replace(ex, draft="".join(parts), mode="model")

    async def _offline(self, ex: Exchange, mode: str) -> Exchange:
        avoid = [t.text for t in ex.history if t.role == "assistant"][-8:]
        line = self.offline.answer(ex.persona, ex.text, ex.incoming.display_name, avoid, ex.scenes)
        if ex.sink:
            await ex.sink(line)
        log.info("reply in %s mode (example line)", mode)
        return replace(ex, draft=line, mode="offline" if mode == "offline" else "fallback")
