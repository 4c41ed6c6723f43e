"""The voice contracts: the Voice the speak stage relies on, and the engine and translator behind it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from core.messages import Clip
from persona.card import Persona
from voice.audio import Audio


class VoiceError(Exception):
    """A voice engine or translator failed; the message says what and how to fix it."""


class Voice(Protocol):
    """Turns a reply into a clip in the persona's voice."""

    async def speak(self, persona: Persona, text: str, *, fmt: str = "ogg") -> Clip | None:
        """A clip for the text in `fmt` (ogg = Opus, wav, flac, mp3), or None when nothing is said aloud."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class Engine(Protocol):
    """A text-to-speech engine: text in the voice's language to audio samples."""

    name: str

    async def synthesize(
        self, text: str, speaker: str, language: str, params: Mapping[str, float | int | str] | None = None
    ) -> Audio:
        """Speak `text` with `speaker` (and the card's engine parameters); raise VoiceError on failure."""
        ...

    def params(self) -> dict[str, object]:
        """Everything besides text and speaker that changes the sound (part of the cache key)."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class Translator(Protocol):
    """Turns a reply into the voice's language, in the character's own words."""

    async def translate(self, persona: Persona, text: str, target: str) -> str | None:
        """The text in `target`, or None when it cannot be translated."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...
