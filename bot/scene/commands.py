"""`/scene add|remove|list`: the characters of a Discord channel's scene, kept in its channel settings.

A QQ group's scene is its character accounts ([qq] accounts), so there the commands only say so.
The first `/scene add` starts the scene with the character already speaking in the channel; when
fewer than two are left, the scene ends and the one left speaks alone.
"""

from __future__ import annotations

from bot.app import App
from bot.commands.handlers import Answer
from core.messages import Incoming
from persona.library import ID_PATTERN

MAX_CAST = 8  # characters in one scene: each line of a round is a model call
ON_QQ = "On QQ a scene is one QQ account per character: [qq] accounts in config.toml (see the README)."
ELSEWHERE = "Scenes are for Discord server channels (/scene add) and QQ groups ([qq] accounts)."


async def _cast(app: App, msg: Incoming) -> tuple[list[str], str]:
    """The scene's characters here (none when there is no scene) and the character speaking alone otherwise."""
    persona, settings, _ = await app.conversations.here(msg)
    cast = [pid for pid in settings.scene if pid in app.personas]
    return (cast if len(cast) >= 2 else []), persona.id


def _refusal(msg: Incoming) -> Answer | None:
    """Why a scene cannot be set up from here; None where it can."""
    if msg.platform == "qq":
        return Answer(ON_QQ, ok=False)
    if msg.platform != "discord":
        return Answer(ELSEWHERE, ok=False)
    if msg.is_direct:
        return Answer("A scene needs a server channel: its characters speak through the channel's webhook.", ok=False)
    return None


def _names(app: App, cast: list[str]) -> str:
    return ", ".join(f"{app.personas.get(pid).name} ({pid})" for pid in cast)


async def scene_list(app: App, msg: Incoming) -> Answer:
    """Who is in the scene here."""
    if (refused := _refusal(msg)) is not None:
        return refused
    cast, alone = await _cast(app, msg)
    if not cast:
        return Answer(f"No scene here: {_names(app, [alone])} speaks alone. /scene add ID adds a character.")
    return Answer(f"Scene here: {_names(app, cast)}.")


async def scene_add(app: App, msg: Incoming, raw: str) -> Answer:
    """Add a character to the scene here (starting one with the character already speaking)."""
    if (refused := _refusal(msg)) is not None:
        return refused
    pid = raw.strip().lower()
    if not ID_PATTERN.match(pid) or pid not in app.personas:
        return Answer(f"No persona '{pid[:40]}'; choose one of: {', '.join(app.personas.ids())}", ok=False)
    cast, alone = await _cast(app, msg)
    cast = cast or [alone]
    if pid in cast:
        return Answer(f"{app.personas.get(pid).name} is in the scene already: {_names(app, cast)}.")
    if len(cast) >= MAX_CAST:
        return Answer(f"A scene holds at most {MAX_CAST} characters; /scene remove one first.", ok=False)
    cast.append(pid)
    await app.conversations.update(msg.conversation, scene=tuple(cast))
    return Answer(f"Scene here: {_names(app, cast)}. Each speaks under its own name through this channel's "
                  "webhook (the bot needs the Manage Webhooks permission here).")


async def scene_remove(app: App, msg: Incoming, raw: str) -> Answer:
    """Take a character out of the scene here; with one left, the scene ends and that one speaks alone."""
    if (refused := _refusal(msg)) is not None:
        return refused
    pid = raw.strip().lower()
    cast, _ = await _cast(app, msg)
    if pid not in cast:
        return Answer(f"'{pid[:40]}' is not in a scene here; /scene list shows who is.", ok=False)
    cast.remove(pid)
    if len(cast) >= 2:
        await app.conversations.update(msg.conversation, scene=tuple(cast))
        return Answer(f"Scene here: {_names(app, cast)}.")
    await app.conversations.update(msg.conversation, scene=(), persona=cast[0])
    return Answer(f"The scene here ended: {_names(app, cast)} speaks alone.")
