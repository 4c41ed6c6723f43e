"""Who speaks where and with which settings: the persona and settings of each conversation."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Final, Literal

from bot.pipeline.exchange import ChannelSettings
from core.conversation import Conversation
from core.messages import Incoming
from core.stores import SettingsStore, TurnLog
from memory.turns import SessionKey
from persona.card import Persona
from persona.library import PersonaLibrary

FRESH_SECONDS = 2.0  # how long a channel's settings are reused before the store is asked again
KEPT = 10_000  # channels whose settings are kept at most


class _Keep:
    """Leave a setting as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


class Conversations:
    """Reads and changes a conversation's persona and settings ([knowledge] max_chapter is the default limit).

    Settings read are kept for `fresh_seconds`: a busy channel (a scene's round reads them for every
    line) asks the store once in a while, not for each message. A change made here is seen at once;
    one made by another process sharing the store, within `fresh_seconds`.
    """

    def __init__(
        self,
        store: SettingsStore,
        turns: TurnLog,
        personas: PersonaLibrary,
        default_persona: str,
        spoiler_limits: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        fresh_seconds: float = FRESH_SECONDS,
    ):
        self.store = store
        self.turns = turns
        self.personas = personas
        self.default_persona = default_persona
        self.spoiler_limits = spoiler_limits or {}
        self.clock = clock
        self.fresh_seconds = fresh_seconds
        self._kept: OrderedDict[str, tuple[float, ChannelSettings]] = OrderedDict()
        self._changes = 0  # a read that began before a change keeps nothing

    async def settings(self, where: Conversation) -> ChannelSettings:
        """The stored settings of a conversation, with the configured spoiler limit as default."""
        kept = self._kept.get(where.key)
        if kept is not None and self.clock() < kept[0]:
            return kept[1]
        changes = self._changes
        settings = ChannelSettings.parse(await self.store.settings(where))
        default = self.spoiler_limits.get(f"{where.platform}:{where.id}")
        if settings.max_chapter is None and not settings.spoilers_off and default is not None:
            settings = replace(settings, max_chapter=default)
        if changes == self._changes and self.fresh_seconds > 0:
            self._kept[where.key] = (self.clock() + self.fresh_seconds, settings)
            self._kept.move_to_end(where.key)
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return settings

    def persona_for(self, msg: Incoming, settings: ChannelSettings) -> Persona:
        """Explicit persona, else the conversation's, else the default."""
        for pid in (msg.persona, settings.persona, self.default_persona):
            if pid and pid in self.personas:
                return self.personas.get(pid)
        return self.personas.get(self.personas.ids()[0])

    async def here(self, msg: Incoming) -> tuple[Persona, ChannelSettings, SessionKey]:
        """The persona speaking in the message's conversation, its settings and its session key."""
        settings = await self.settings(msg.conversation)
        persona = self.persona_for(msg, settings)
        return persona, settings, SessionKey.of(persona.id, msg.conversation)

    async def update(
        self,
        where: Conversation,
        *,
        persona: str | _Keep = KEEP,
        voice: bool | _Keep | None = KEEP,
        max_chapter: int | Literal["off"] | _Keep | None = KEEP,
        chance: float | _Keep | None = KEEP,
        bots: bool | _Keep | None = KEEP,
        initiative: bool | _Keep = KEEP,
        scene: tuple[str, ...] | _Keep = KEEP,
    ) -> None:
        """Change some settings; None clears one back to the configured default.

        `max_chapter="off"` lifts the limit even where config.toml sets one.
        """
        changes: dict[str, str | None] = {}
        if not isinstance(persona, _Keep):
            if persona not in self.personas:
                raise KeyError(persona)
            changes["persona"] = persona
        if not isinstance(voice, _Keep):
            changes["voice"] = None if voice is None else ("on" if voice else "off")
        if not isinstance(max_chapter, _Keep):
            changes["max_chapter"] = None if max_chapter is None else str(max_chapter)
        if not isinstance(chance, _Keep):
            if chance is not None and not 0.0 <= chance <= 1.0:
                raise ValueError(f"chance must be from 0 to 1, not {chance}")
            changes["chance"] = None if chance is None else str(chance)
        if not isinstance(bots, _Keep):
            changes["bots"] = None if bots is None else ("on" if bots else "off")
        if not isinstance(initiative, _Keep):
            changes["initiative"] = "on" if initiative else None
        if not isinstance(scene, _Keep):
            if unknown := [p for p in scene if p not in self.personas]:
                raise KeyError(unknown[0])
            changes["scene"] = ",".join(dict.fromkeys(scene)) or None
        self._changes += 1
        self._kept.pop(where.key, None)
        try:
            for name, value in changes.items():
                await self.store.set_setting(where, name, value)
        finally:
            self._changes += 1  # a read during the writes may have seen half of them
            self._kept.pop(where.key, None)

    async def set_persona(self, where: Conversation, pid: str) -> Persona:
        """Switch the conversation's persona (each persona keeps its own history)."""
        persona = self.personas.get(pid)
        await self.update(where, persona=pid)
        return persona

    async def reset(self, msg: Incoming) -> Persona:
        """Forget the conversation (history and summary) of the active persona, for everyone."""
        persona, _, key = await self.here(msg)
        await self.turns.reset(key)
        return persona
