"""The voice contract the speak stage relies on."""

from __future__ import annotations

from typing import Protocol

from bot.messages import Clip
from persona.card import Persona


class Voice(Protocol):
    """Turns a reply into a clip in the persona's voice."""

    async def speak(self, persona: Persona, text: str) -> Clip | None:
        """A clip for the text, or None when there is nothing to say aloud."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...
