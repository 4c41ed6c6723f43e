"""The voice service: pick the engine, trim and translate the reply, synthesize, encode, cache."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from core.config import VoiceConfig
from core.messages import Clip
from persona.card import Persona
from voice.audio import FORMATS, duration_of, encode
from voice.base import Engine, Translator, VoiceError
from voice.cache import ClipCache, clip_key
from voice.kokoro import DEFAULT_SPEAKER
from voice.vits import Model

log = logging.getLogger(__name__)

VITS_FAMILY: tuple[Model, ...] = ("vits", "bert-vits2", "gpt-sovits")
# Stage directions and markup are read, not spoken: （摇尾巴） (laughs) *sighs* 【旁白】 and links.
_UNSPOKEN = re.compile(r"（[^）]*）|\([^)]*\)|\*[^*]*\*|【[^】]*】|\[[^\]]*\]|https?://\S+")
_SENTENCE_END = re.compile(r"(?<=[。！？!?…~～\n])")


def speakable(text: str) -> str:
    """The words meant to be heard: no stage directions, links or markup, whitespace folded."""
    return re.sub(r"\s+", " ", _UNSPOKEN.sub("", text)).strip()


def capped(text: str, max_chars: int) -> str:
    """At most max_chars, cut after the last whole sentence that fits (else at the limit)."""
    if len(text) <= max_chars:
        return text
    out = ""
    for sentence in _SENTENCE_END.split(text):
        if len(out) + len(sentence) > max_chars:
            break
        out += sentence
    return (out or text[:max_chars]).strip()


@dataclass(frozen=True, slots=True)
class Route:
    """Which engine speaks for a persona, as whom, in what language."""

    engine: Engine
    speaker: str
    language: str
    params: dict[str, float | int | str] = field(default_factory=dict)


class VoiceService:
    """The Voice the speak stage uses; see docs/voice.md for the engine choice."""

    def __init__(
        self,
        cfg: VoiceConfig,
        engines: dict[str, Engine],
        translator: Translator,
        cache: ClipCache,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ):
        if "kokoro" not in engines and not any(e in engines for e in VITS_FAMILY):
            raise ValueError("no voice engine")
        self.cfg = cfg
        self.engines = engines
        self.translator = translator
        self.cache = cache
        self._closers = list(closers)

    def route(self, persona: Persona) -> Route:
        """[voice] engine = kokoro|vits forces a family; auto follows the card, kokoro when VITS is absent."""
        spec = persona.card.voice
        wanted: str = spec.engine
        if self.cfg.engine == "kokoro":
            wanted = "kokoro"
        elif self.cfg.engine == "vits" and wanted not in VITS_FAMILY:
            wanted = "vits"
        if wanted not in self.engines:
            wanted = "kokoro" if "kokoro" in self.engines else next(e for e in VITS_FAMILY if e in self.engines)
        same_family = (wanted == "kokoro") == (spec.engine == "kokoro")
        if wanted == "kokoro":
            return Route(self.engines[wanted], spec.speaker if same_family else DEFAULT_SPEAKER, "ja")
        return Route(
            self.engines[wanted], spec.speaker if same_family else "0", spec.translate_to or spec.language,
            dict(spec.params) if same_family else {},
        )

    async def speak(self, persona: Persona, text: str, *, fmt: str = "ogg") -> Clip | None:
        """A clip for the reply (translated first), or None when nothing is left to say."""
        return await self.render(persona, text, fmt=fmt)

    async def render(self, persona: Persona, text: str, *, fmt: str = "ogg", translate: bool = True) -> Clip | None:
        """speak(), with translation optional (the `voice` command's --no-translate)."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown clip format {fmt!r}; use one of {', '.join(FORMATS)}")
        try:
            return await asyncio.wait_for(self._render(persona, text, fmt, translate), self.cfg.timeout)
        except TimeoutError:
            raise VoiceError(f"voice took longer than [voice] timeout = {self.cfg.timeout:g}s") from None

    async def _render(self, persona: Persona, text: str, fmt: str, translate: bool) -> Clip | None:
        route = self.route(persona)
        source = capped(speakable(text), self.cfg.max_chars)
        if not source:
            return None
        spoken = await self.translator.translate(persona, source, route.language) if translate else source
        if not spoken:
            log.info("voice: nothing to say for %s (no translation into %s)", persona.id, route.language)
            return None
        spoken = capped(speakable(spoken), self.cfg.max_chars)
        key = clip_key(
            route.engine.name, route.speaker, spoken,
            {**route.engine.params(), **route.params, "max_s": self.cfg.max_seconds}, fmt,
        )
        cached = await asyncio.to_thread(self.cache.get, key, fmt)  # disk I/O off the event loop
        if cached is not None:
            return Clip(cached, fmt, duration_of(cached), spoken)
        audio = await route.engine.synthesize(spoken, route.speaker, route.language, route.params)
        if audio.duration <= 0:
            return None
        audio = audio.clipped(self.cfg.max_seconds)
        data = await asyncio.to_thread(encode, audio, fmt)  # Opus encoding is real CPU work
        await asyncio.to_thread(self.cache.put, key, fmt, data)
        return Clip(data, fmt, audio.duration, spoken)

    async def close(self) -> None:
        """Close the translator and every engine."""
        for closer in (self.translator.close, *(e.close for e in self.engines.values()), *self._closers):
            try:
                await closer()
            except Exception as exc:  # closing must go on
                log.warning("voice close: %s", exc)
