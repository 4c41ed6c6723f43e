"""Terminal chat: interactive with streaming, or one reply per input line when scripted."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.app import App
from bot.commands.handlers import Commands
from bot.commands.table import Access, find, help_text, invoke
from core.messages import Incoming, Reply
from core.outlet import ClipTask
from memory.store import StoreError
from memory.turns import SessionKey
from persona.card import Persona

HELP = "/help lists the commands · /persona ID switches character · /quit leaves"


class TerminalOutlet:
    """The terminal's outlet: interactive, the reply streams as it is written; scripted, one line per reply."""

    def __init__(self, out: TextIO, interactive: bool):
        self.out = out
        self.interactive = interactive
        self.shown: list[str] = []  # what streamed since the last reply part
        self.replied = False

    def placed(self, position: int) -> None:
        """One user, one line at a time: nothing to show."""

    async def partial(self, text: str) -> None:
        """Interactive: the words as they come."""
        if self.interactive:
            self.shown.append(text)
            self.out.write(text)
            self.out.flush()

    async def send(self, reply: Reply) -> None:
        """Interactive: the reply again when it differs from what streamed; scripted: the reply on one line."""
        self.replied = True
        if not self.interactive:
            print(reply.text.replace("\n", " "), file=self.out, flush=True)
            return
        if not "".join(self.shown).strip().endswith(reply.text.strip()):
            self.out.write(f"\n{reply.persona_name}: {reply.text}")
        self.out.write("\n")
        self.shown.clear()

    async def react(self, emoji: str) -> None:
        """Never asked for in a direct chat; shown as a line if it ever is."""
        await self.send(Reply(emoji, "", "", "reaction"))

    async def voice(self, clip: ClipTask) -> None:
        """The clip is made (and waited for); interactive, a note says so."""
        made = await clip
        if made and self.interactive:
            print(f"(voice clip: {made.duration:.1f}s {made.format})", file=self.out)


class TerminalChat:
    """Talks to the chain as one user in a direct conversation named by --session."""

    def __init__(self, app: App, session: str, persona: str = "", out: TextIO = sys.stdout, name: str = ""):
        self.app = app
        self.session = session
        self.persona = persona
        self.out = out
        self.user = name  # "" lets the card's own name for the user stand

    def incoming(self, text: str) -> Incoming:
        """A terminal line as a direct message."""
        return Incoming(
            platform="terminal",
            channel_id=self.session,
            user_id=self.session,
            display_name=self.user,
            text=text,
            is_direct=True,
            persona=self.persona,
        )

    async def run(self, interactive: bool) -> None:
        """Chat until /quit or end of input."""
        if self.persona:
            await self.app.conversations.set_persona(self.incoming("").conversation, self.persona)
        if interactive:
            await self._greet()
        while True:
            line = await asyncio.to_thread(self._read, interactive)
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/") and await self._command(line):
                    if line.split()[0] in ("/quit", "/exit"):
                        break
                    continue
                await self._say(line, interactive)
            except StoreError as exc:  # memory went away: say so, keep the chat open
                print(f"\n(memory unavailable: {exc})", file=self.out)

    def _read(self, interactive: bool) -> str | None:
        try:
            if interactive:  # input()'s own prompt goes to stderr; the chat lives on stdout
                self.out.write("> ")
                self.out.flush()
                return input()
            return sys.stdin.readline() or None
        except EOFError:
            return None

    async def _current(self) -> Persona:
        persona, _, _ = await self.app.conversations.here(self.incoming(""))
        return persona

    async def _greet(self) -> None:
        persona = await self._current()
        key = SessionKey.of(persona.id, self.incoming("").conversation)
        if not await self.app.store.recent(key, 1) and persona.greetings():
            print(f"{persona.name}: {persona.render(persona.greetings()[0], self.user)}", file=self.out)
        print(f"({HELP})", file=self.out)

    async def _say(self, line: str, interactive: bool) -> None:
        if interactive:
            self.out.write(f"{(await self._current()).name}: ")
        outlet = TerminalOutlet(self.out, interactive)
        await self.app.chain.handle(self.incoming(line), outlet)
        if not outlet.replied:  # silent: the line still ends (scripted: an empty line per input)
            print("", file=self.out, flush=True)

    async def _command(self, line: str) -> bool:
        """Run a command from the table (the terminal's user owns the chat: every right); /quit, /help."""
        words = line[1:].split()
        head = words[0].lower() if words else ""
        if head in ("quit", "exit"):
            return True
        if head == "help":
            print(f"{help_text()}\n/quit — leave", file=self.out)
            return True
        found = find(words)
        if found is None:
            return False
        command, args = found
        result = await invoke(Commands(self.app), self.incoming(""), command, args, Access(admin=True, over_others=True))
        if command.name == "persona set" and result.ok:
            self.persona = ""  # the chat's choice now speaks, not --persona
        print(f"({result.text})", file=self.out)
        return True
