"""Platform-neutral chat commands; Discord slash commands and QQ matchers call these."""

from __future__ import annotations

from dataclasses import dataclass

from bot.app import App
from bot.chain import conversation_of
from bot.messages import Incoming
from memory.turns import SessionKey
from persona.library import PersonaError


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's result: text for the user, and whether it succeeded."""

    text: str
    ok: bool = True


class Commands:
    """What admins and users can change about a conversation (permissions are the caller's job)."""

    def __init__(self, app: App):
        self.app = app

    def personas(self) -> Answer:
        """Every persona: id and name."""
        lib = self.app.personas
        return Answer("\n".join(f"{pid} — {lib.get(pid).name}" for pid in lib.ids()))

    async def set_persona(self, msg: Incoming, pid: str) -> Answer:
        """Switch this conversation to another persona; answers with its greeting."""
        try:
            persona = await self.app.chain.set_persona(msg, pid.strip())
        except PersonaError as exc:
            return Answer(str(exc), ok=False)
        greeting = persona.greetings()[0] if persona.greetings() else persona.name
        return Answer(persona.render(greeting, msg.display_name))

    async def reset(self, msg: Incoming) -> Answer:
        """Forget this conversation for everyone in it."""
        persona = await self.app.chain.reset(msg)
        return Answer(f"{persona.name} forgot this conversation.")

    async def voice(self, msg: Incoming, on: bool) -> Answer:
        """Turn voice clips on or off here."""
        await self.app.chain.set_setting(msg, "voice", "on" if on else "off")
        return Answer(f"Voice {'on' if on else 'off'}.")

    async def spoiler(self, msg: Incoming, chapter: int | None) -> Answer:
        """Limit what the character knows to chapters up to `chapter` (None lifts the limit)."""
        # "off" (not a missing value) so a limit from config.toml is lifted too
        value = "off" if chapter is None or chapter <= 0 else str(chapter)
        await self.app.chain.set_setting(msg, "max_chapter", value)
        return Answer("Spoiler limit lifted." if value == "off" else f"Spoiler limit: chapter {chapter}.")

    async def lore(self, msg: Incoming, query: str) -> Answer:
        """What the character would recall for `query` here (passages, lore, scenes)."""
        settings = await self.app.chain.channel_settings(msg)
        persona = self.app.chain.persona_for(msg, settings)
        found = await self.app.knowledge.lookup(persona, query, [], settings.max_chapter)
        items = [*found.lore, *found.passages, *found.scenes]
        if not items:
            return Answer("Nothing found.")
        return Answer("\n\n".join(f"[{p.kind}{' · ' + p.source if p.source else ''}] {p.text}" for p in items))

    async def stats(self, msg: Incoming) -> Answer:
        """Which persona, how much is remembered, which mode answers."""
        settings = await self.app.chain.channel_settings(msg)
        persona = self.app.chain.persona_for(msg, settings)
        scope, cid = conversation_of(msg)
        key = SessionKey(persona.id, msg.platform, scope, cid)  # type: ignore[arg-type]
        turns = await self.app.store.recent(key, self.app.settings.memory.max_turns)
        summary = await self.app.store.summary(key)
        model = self.app.model.name if self.app.model else "offline (example lines)"
        voice = settings.voice if settings.voice is not None else self.app.settings.voice.enabled
        lines = [
            f"persona: {persona.id} ({persona.name})",
            f"remembered turns: {len(turns)}; summary: {'yes' if summary.text else 'no'}",
            f"model: {model}; memory: {self.app.store.name}",
            f"voice: {'on' if voice else 'off'}; spoiler limit: {settings.max_chapter or 'none'}",
        ]
        return Answer("\n".join(lines))
