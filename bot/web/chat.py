"""The chat page: a browser is one user in a direct conversation of its own, over the same chain and commands."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from bot.app import App
from bot.commands.handlers import Commands
from bot.commands.table import Access, find, help_text, invoke
from bot.web import pages
from bot.web.auth import VISITOR_COOKIE
from core.messages import Incoming, Reply
from core.outlet import ClipTask
from memory.store import StoreError

log = logging.getLogger(__name__)
BODY_BYTES = 64 * 1024  # a chat message is small; a bigger body is refused before it is read whole
SHOWN_TURNS = 50
CLIP_BYTES = 4 * 1024 * 1024  # a voice clip larger than this is not inlined into the page


async def read_capped(request: Request, limit: int = BODY_BYTES) -> bytes | None:
    """The request body, or None when it is larger than `limit`."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


class WebOutlet:
    """The page's outlet: what the chain hands it becomes lines of one /chat/send response (NDJSON)."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()  # None: the answer is over

    def placed(self, position: int) -> None:
        """The page shows "…" until the first words come."""

    async def partial(self, text: str) -> None:
        """{"delta"}: the next words as they are written."""
        self.lines.put_nowait(_line(delta=text))

    async def send(self, reply: Reply) -> None:
        """{"reply", "name", "mode"}: the reply whole (it replaces what streamed)."""
        self.lines.put_nowait(_line(reply=reply.text, name=reply.persona_name, mode=reply.mode))

    async def react(self, emoji: str) -> None:
        """{"reply", "mode": "reaction"}: the emoji in place of words."""
        self.lines.put_nowait(_line(reply=emoji, mode="reaction"))

    async def voice(self, clip: ClipTask) -> None:
        """{"voice"}: the clip inlined as a data: URL (one larger than CLIP_BYTES is left out)."""
        made = await clip
        if made is not None and len(made.data) <= CLIP_BYTES:
            mime = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "opus": "audio/ogg"}.get(
                made.format, "application/octet-stream")
            self.lines.put_nowait(_line(voice=f"data:{mime};base64,{base64.b64encode(made.data).decode()}"))


class WebChat:
    """Routes of the chat page."""

    def __init__(self, app: App):
        self.app = app

    def incoming(self, visitor: str, text: str, persona: str = "") -> Incoming:
        """A line typed in the page as a direct message from this browser's visitor."""
        return Incoming(platform="web", channel_id=visitor, user_id=visitor, display_name="", text=text,
                        message_id=uuid.uuid4().hex if text else "", is_direct=True, persona=persona)

    async def page(self, request: Request) -> Response:
        """GET /chat: the picker, the last lines of this browser's conversation, the text box."""
        msg = self.incoming(_visitor(request), "")
        persona, _, key = await self.app.conversations.here(msg)
        try:
            turns = await self.app.store.recent(key, SHOWN_TURNS)
        except StoreError:
            turns = []
        lines = [(t.role, persona.name if t.role == "assistant" else (t.name or "you"), t.text) for t in turns]
        if not lines and persona.greetings():
            lines = [("assistant", persona.name, persona.render(persona.greetings()[0], None))]
        choices = [(pid, self.app.personas.get(pid).name) for pid in self.app.personas.ids()]
        return HTMLResponse(pages.chat(choices, persona.id, lines))

    async def send(self, request: Request) -> Response:
        """POST /chat/send {"text", "persona"}: the reply as it is written, one JSON object per line."""
        body = await read_capped(request)
        if body is None:
            return JSONResponse({"error": "message too large"}, 413)
        try:
            data = json.loads(body or b"{}")
            text, wanted = str(data.get("text", "")), str(data.get("persona", ""))
        except (ValueError, AttributeError):
            return JSONResponse({"error": "send JSON: {\"text\": \"...\", \"persona\": \"id\"}"}, 400)
        visitor = _visitor(request)
        if wanted and wanted not in self.app.personas.ids():
            return JSONResponse({"error": f"no character {wanted!r}"}, 400)
        if wanted:
            here = self.incoming(visitor, "").conversation
            current, _, _ = await self.app.conversations.here(self.incoming(visitor, ""))
            if current.id != wanted:
                await self.app.conversations.set_persona(here, wanted)
        if not text.strip():  # the picker alone: the character is switched, nothing is said
            return JSONResponse({"persona": wanted}) if wanted else JSONResponse({"error": "empty message"}, 400)
        return StreamingResponse(self._lines(visitor, text.strip()), media_type="application/x-ndjson")

    async def _lines(self, visitor: str, text: str) -> AsyncIterator[str]:
        if text.startswith("/"):
            yield _line(command=await self._command(visitor, text))
            return
        outlet = WebOutlet()

        async def answer() -> Reply | None:
            try:
                return await self.app.chain.handle(self.incoming(visitor, text), outlet)
            finally:
                outlet.lines.put_nowait(None)

        # the reply is stored whether or not the browser stays to read it
        task = asyncio.create_task(answer(), name="web-reply")
        while (line := await outlet.lines.get()) is not None:
            yield line
        try:
            reply = await task
        except StoreError as exc:
            yield _line(error=f"memory unavailable: {exc}")
            return
        if reply is None:
            yield _line(silent=True)

    async def _command(self, visitor: str, line: str) -> str:
        """A chat command from the same table as every platform; the page's visitor owns its chat."""
        words = line[1:].split()
        if not words or words[0].lower() == "help":
            return help_text()
        found = find(words)
        if found is None:
            return f"unknown command /{words[0]}; /help lists them"
        command, args = found
        try:
            result = await invoke(Commands(self.app), self.incoming(visitor, ""), command, args,
                                  Access(admin=True, over_others=False))
        except StoreError as exc:
            return f"memory unavailable: {exc}"
        return result.text


def _visitor(request: Request) -> str:
    """This browser's user id (a script with a Bearer token and no cookie is the user "script")."""
    raw = request.cookies.get(VISITOR_COOKIE, "")
    return raw if raw and len(raw) <= 64 and raw.replace("-", "").replace("_", "").isalnum() else "script"


def _line(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False) + "\n"

