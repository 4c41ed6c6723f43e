"""Every chat command once: name, arguments, who may use it, handler and help text.

The terminal, Discord's slash commands and QQ's matchers are all drawn from `TABLE`, so every
platform has every command, with the same permissions and the same words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.commands.handlers import (
    MAX_CHAPTER,
    Answer,
    BadArgument,
    Commands,
    chapter_arg,
    forget_arg,
    percent_arg,
    switch_arg,
    text_arg,
)
from bot.scene.commands import scene_add, scene_list, scene_remove
from core.messages import Incoming

Who = Literal["anyone", "admin"]
Kind = Literal["text", "chapter", "percent", "switch", "which", "persona"]
NOT_ALLOWED = "Only admins can change that here: the group owner, admins or the bot's superusers on QQ, Manage Server on Discord."
NOT_FOR_OTHERS = ("Only admins can make the character forget someone else: the group owner, admins or the bot's "
                  "superusers on QQ (only superusers in a private chat), Manage Server on Discord.")
SENT_PRIVATELY = "I sent you the answer in a private message."
PRIVATE_ONLY = ("That answer is for you alone and I cannot send you a private message from here: "
                "ask me in a private chat.")


@dataclass(frozen=True, slots=True)
class Access:
    """What the asker may do here, as their platform says: change this conversation; act on other users."""

    admin: bool
    over_others: bool = False


@dataclass(frozen=True, slots=True)
class Param:
    """One argument: how it is typed on each platform and how it is checked (the same check everywhere)."""

    name: str
    kind: Kind
    help: str
    optional: bool = False

    def parse(self, raw: str, command: str) -> Any:
        """The checked value; BadArgument says what to write instead."""
        if self.kind == "chapter":
            return chapter_arg(raw)
        if self.kind == "percent":
            return percent_arg(raw)
        if self.kind == "switch":
            return switch_arg(raw, command)
        if self.kind == "which":
            return forget_arg(raw)
        return text_arg(raw)


Handler = Callable[[Commands, Incoming, Sequence[Any], str], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Command:
    """One chat command. `name` may have two words ("persona set"): a group and its subcommand."""

    name: str
    help: str
    run: Handler
    params: tuple[Param, ...] = ()
    who: Who = "anyone"
    # about a person: only the asker sees the answer (Discord: ephemeral; a QQ group: a private
    # message, else a refusal and nothing more); never posted where others read
    private: bool = False
    quiet: bool = False  # only the asker needs it: Discord shows it to them alone, elsewhere it goes where asked
    names_user: bool = False  # may name another user; then only admins over others may use it
    rest: bool = False  # the last argument takes the rest of the line (a query)
    slow: bool = False  # may take a while: Discord shows "thinking…" first

    @property
    def usage(self) -> str:
        """How to type it: "/forget WHICH [@user]"."""
        args = " ".join(f"[{p.name.upper()}]" if p.optional else p.name.upper() for p in self.params)
        return " ".join(filter(None, (f"/{self.name}", args, "[@user]" if self.names_user else "")))


# in a scene: which character is asked (/why, /memory, /forget); without it, the character here
CHARACTER = Param("character", "persona", "in a scene, which character: persona id or name", optional=True)

# each handler: (commands, message, checked arguments, another user named) -> the answer
TABLE: tuple[Command, ...] = (
    Command("persona list", "Every character this bot can be", lambda c, m, a, t: c.personas(), quiet=True),
    Command("persona set", "Switch the character here (admins)", lambda c, m, a, t: c.set_persona(m, a[0]),
            (Param("persona", "persona", "persona id, e.g. horo"),), who="admin"),
    Command("reset", "Forget this conversation for everyone (admins; anyone in a direct chat)",
            lambda c, m, a, t: c.reset(m), who="admin"),
    Command("voice", "Voice clips after replies here, on or off (admins)", lambda c, m, a, t: c.voice(m, a[0]),
            (Param("state", "switch", "on or off"),), who="admin"),
    Command("lore", "What the character recalls about something", lambda c, m, a, t: c.lore(m, a[0]),
            (Param("query", "text", "what to look up"),), quiet=True, rest=True, slow=True),
    Command("spoiler", f"Limit what the character knows to chapters up to N (1-{MAX_CHAPTER}); off or 0 lifts it (admins)",
            lambda c, m, a, t: c.spoiler(m, a[0]),
            (Param("chapter", "chapter", "last chapter the character may know; 0 or off for no limit"),), who="admin"),
    Command("chance", "Chance in percent to join in unprompted; 0 turns it off (admins)",
            lambda c, m, a, t: c.chance(m, a[0]), (Param("percent", "percent", "0-100; the [bot] cooldown still applies"),),
            who="admin"),
    Command("bots", "Whether other bots get answers here, with a fall-off (admins)", lambda c, m, a, t: c.bots(m, a[0]),
            (Param("state", "switch", "on or off"),), who="admin"),
    Command("initiative", "Whether the character may speak first here after a quiet spell (admins)",
            lambda c, m, a, t: c.initiative(m, a[0]), (Param("state", "switch", "on or off"),), who="admin"),
    Command("stats", "Which character, how much it remembers, which model answers", lambda c, m, a, t: c.stats(m),
            quiet=True),
    Command("memory", "What the character remembers about you (only you see it)", lambda c, m, a, t: c.memory(m, a[0]),
            (CHARACTER,), private=True),
    Command("forget", "Remove facts the character remembers: N from /memory, or all (admins: about someone else)",
            lambda c, m, a, t: c.forget(m, a[0], t, a[1]), (Param("which", "which", "a number /memory shows, or all"),
                                                            CHARACTER), private=True, names_user=True),
    Command("why", "Which memories, facts, lore and passages the last reply was given (only you see it)",
            lambda c, m, a, t: c.why(m, a[0]), (CHARACTER,), private=True),
    Command("scene list", "The characters of this channel's scene (admins)", lambda c, m, a, t: scene_list(c.app, m),
            who="admin", quiet=True),
    Command("scene add", "Add a character to this channel's scene; each speaks through a webhook (admins, Discord)",
            lambda c, m, a, t: scene_add(c.app, m, a[0]), (Param("persona", "persona", "persona id, e.g. yexiu"),),
            who="admin"),
    Command("scene remove", "Take a character out of this channel's scene (admins, Discord)",
            lambda c, m, a, t: scene_remove(c.app, m, a[0]), (Param("persona", "persona", "persona id"),),
            who="admin"),
)
BY_NAME = {c.name: c for c in TABLE}
GROUPS = sorted({c.name.split()[0] for c in TABLE if " " in c.name})  # "persona": typed as /persona list|set ID


def find(words: Sequence[str]) -> tuple[Command, list[str]] | None:
    """The command a typed line names (without its slash) and the words left for its arguments.

    A group's bare name means its first subcommand (`/persona` lists the personas); followed by
    anything else, its one subcommand that takes arguments.
    """
    if not words:
        return None
    head = words[0].lower()
    if head in GROUPS:
        sub = words[1].lower() if len(words) > 1 else ""
        chosen = BY_NAME.get(f"{head} {sub}")
        if chosen is not None:
            return chosen, list(words[2:])
        subs = [c for c in TABLE if c.name.startswith(head + " ")]
        if len(words) == 1:
            return subs[0], []
        taking = [c for c in subs if c.params]  # `/persona yexiu` is `/persona set yexiu`
        return (taking[0], list(words[1:])) if len(taking) == 1 else None
    chosen = BY_NAME.get(head)
    return (chosen, list(words[1:])) if chosen else None


def usage_of(group: str) -> str:
    """The usage line of a command or of every subcommand of a group."""
    return " | ".join(c.usage for c in TABLE if c.name == group or c.name.startswith(group + " "))


async def invoke(commands: Commands, msg: Incoming, command: Command, raw: Sequence[str], access: Access,
                 target: str = "") -> Answer:
    """Check the arguments and the asker's rights, then run the command.

    `raw` holds the typed arguments (the words of a line, or a slash command's option values as text);
    `target` is another user the asker named (ignored when it is the asker).
    """
    if target == msg.user_id:
        target = ""
    values: list[Any] = []
    try:
        if command.rest and command.params:
            raw = [*raw[: len(command.params) - 1], " ".join(raw[len(command.params) - 1:])]
        given = [r for r in raw if r.strip()]
        if len(given) > len(command.params) and not command.names_user:
            raise BadArgument(f"Usage: {command.usage}")
        for i, param in enumerate(command.params):
            if i >= len(given):
                if not param.optional:
                    raise BadArgument(f"Usage: {command.usage}")
                values.append(None)
                continue
            values.append(param.parse(given[i], command.name))
    except BadArgument as exc:
        return Answer(str(exc), ok=False)
    if command.who == "admin" and not access.admin:
        return Answer(NOT_ALLOWED, ok=False)
    if target and not (command.names_user and access.over_others):
        return Answer(NOT_FOR_OTHERS if command.names_user else f"Usage: {command.usage}", ok=False)
    return await command.run(commands, msg, values, target)


def help_text() -> str:
    """Every command with its usage, one per line."""
    return "\n".join(f"{c.usage} — {c.help}" for c in TABLE)
