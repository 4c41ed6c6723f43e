"""Discord's outlet: typing, optional streamed edits, the paced and split text, a reaction, then the voice clip."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack, suppress
from typing import cast

import discord

from bot.discord_front.voice_note import is_opus, plain_file, send_voice_message
from bot.discord_front.webhooks import WebhookPool
from bot.outbound.pacing import Pacing
from bot.outbound.split import split_text
from bot.pipeline.arrivals import Ticket
from core.messages import Clip, Reply
from core.outlet import ClipTask

log = logging.getLogger(__name__)

# Model output and quoted user text must never ping @everyone, @here, roles or arbitrary users;
# only the author of the message being answered (a normal reply ping).
MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
QUIET = discord.AllowedMentions.none()
EDIT_INTERVAL = 1.0  # Discord rate-limits faster edits of one message
CURSOR = " …"


class Outbox:
    """Everything sent in answer to one message goes through here (the front's outlet, core/outlet.py).

    Without a message, it posts into `channel` unprompted: no quote, no ping of anyone."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        message: discord.Message | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        stream: bool = False,
        hooks: WebhookPool | None = None,
        me_id: int = 0,
        edit_interval: float = EDIT_INTERVAL,
        pacing: Pacing | None = None,
        ticket: Ticket | None = None,
        avatars: Mapping[str, str] | None = None,
        label: bool = False,
    ):
        self.message = message
        self.channel = channel
        self.mentions = MENTIONS if message is not None else QUIET
        self.ticket = ticket
        self.clock = clock
        self.stream = stream and hooks is None
        self.hooks = hooks
        self.me_id = me_id
        self.edit_interval = edit_interval
        # streamed edits already show the reply growing: no pacing on top of them
        self.pacing = pacing if pacing is not None and pacing.on and not self.stream else None
        self.arrived = clock() if self.pacing else 0.0  # the outbox is made when the message arrives
        self.sent: list[discord.Message] = []
        self.speaker = ""  # the name the last reply went out under (a webhook posts its clip under it too)
        self.avatar = ""  # and the picture (the card's `avatar` URL)
        self.avatars = avatars or {}  # persona id -> avatar URL, for webhook posts
        self.label = label  # in a scene without a webhook: each reply starts with its speaker's name
        self._typing = AsyncExitStack()
        self._typing_on = False
        self._buffer = ""
        self._preview: discord.Message | None = None
        self._last_edit = float("-inf")

    async def start_typing(self) -> None:
        """Show "… is typing" until the text is sent (discord.py renews it every few seconds)."""
        if self._typing_on:
            return
        self._typing_on = True
        try:
            await self._typing.enter_async_context(self.channel.typing())
        except discord.HTTPException as exc:  # typing is a courtesy, never a reason to fail
            log.debug("typing indicator refused: %s", exc)

    async def stop_typing(self) -> None:
        """End the typing indicator."""
        await self._typing.aclose()

    def placed(self, position: int) -> None:
        """The message has its place in the chain: the channel's next message may go."""
        if self.ticket is not None:
            self.ticket.placed()

    async def partial(self, text: str) -> None:
        """Receives the reply as it is generated: typing at once, a growing preview when streaming."""
        delta = text
        await self.start_typing()
        self._buffer += delta
        if not self.stream or not self._buffer.strip():
            return
        now = self.clock()
        if now - self._last_edit < self.edit_interval:
            return
        self._last_edit = now
        preview = split_text(self._buffer)[0][: 2000 - len(CURSOR)] + CURSOR
        try:
            if self._preview is None:
                self._preview = await self.channel.send(
                    preview, reference=self._reference(), allowed_mentions=self.mentions
                )
            else:
                await self._preview.edit(content=preview, allowed_mentions=self.mentions)
        except discord.HTTPException as exc:
            log.warning("streaming edit failed: %s", exc)

    async def discard(self) -> None:
        """The pipeline stayed silent after all: remove a preview that was already shown."""
        if self._preview is not None:
            with suppress(discord.HTTPException):
                await self._preview.delete()
            self._preview = None

    async def send(self, reply: Reply) -> None:
        """The reply's text, paced and split to Discord's limit; the first part answers the triggering message."""
        self.speaker, self.avatar = reply.persona_name, self.avatars.get(reply.persona_id, "")
        hook = await self.hooks.for_channel(self.channel, self.me_id) if self.hooks else None
        text = f"**{reply.persona_name}**: {reply.text}" if self.label and hook is None and reply.text else reply.text
        pieces = self.pacing.parts(text) if self.pacing else [text]
        parts = [chunk for piece in pieces for chunk in split_text(piece)]
        if not parts and hook is None:
            parts = ["…"]  # an empty reply still answers (and replaces a streamed preview)

        async def send(i: int, part: str) -> None:
            if hook is not None:
                webhook, thread = hook
                self.sent.append(
                    await webhook.send(
                        part,
                        username=reply.persona_name,
                        avatar_url=self.avatar or discord.utils.MISSING,
                        allowed_mentions=QUIET,
                        wait=True,
                        thread=thread if thread is not None else discord.utils.MISSING,
                    )
                )
            elif i > 0:
                self.sent.append(await self.channel.send(part, allowed_mentions=self.mentions))
            elif self._preview is not None:
                await self._preview.edit(content=part, allowed_mentions=self.mentions)
                self.sent.append(self._preview)
            else:
                self.sent.append(
                    await self.channel.send(part, reference=self._reference(), allowed_mentions=self.mentions)
                )

        try:
            if self.pacing is None:
                for i, part in enumerate(parts):
                    await send(i, part)
            else:
                # the first part's delay counts the time already spent generating it
                spent = self.clock() - self.arrived
                await self.pacing.send(parts, send, spent=spent, typing=self._typing_again)
        except discord.NotFound as exc:
            if hook is not None and self.hooks is not None:
                self.hooks.forget(getattr(hook[0], "channel_id", None) or 0)
            log.warning("reply not delivered: %s", exc)
        except discord.HTTPException as exc:
            log.warning("reply not delivered: %s", exc)

    async def react(self, emoji: str) -> None:
        """The emoji as a reaction to the message (a courtesy: refused, nothing is said instead)."""
        if self.message is None:
            return
        try:
            await self.message.add_reaction(emoji)
        except discord.HTTPException as exc:
            log.info("reaction refused: %s", exc)

    async def _typing_again(self) -> None:
        """Show typing again: posting a message ends the indicator until it is renewed."""
        try:
            await self.channel.typing()
        except discord.HTTPException as exc:
            log.debug("typing indicator refused: %s", exc)

    async def voice(self, clip: ClipTask) -> None:
        """After the text: the clip as a voice message (or a plain attachment); failures stay quiet."""
        await self.stop_typing()  # the text is out: nobody is typing while the clip is made
        try:
            made = await clip
        except Exception as exc:  # the text is out already; voice is extra
            log.warning("voice clip failed: %s", exc)
            return
        posted = await self._clip(made) if made is not None and made.data else None
        if posted is not None:
            self.sent.append(posted)

    async def _clip(self, clip: Clip) -> discord.Message | None:
        hook = await self.hooks.for_channel(self.channel, self.me_id) if self.hooks else None
        try:
            if hook is not None:
                webhook, thread = hook
                return await webhook.send(
                    file=plain_file(clip),
                    username=self.speaker,
                    avatar_url=self.avatar or discord.utils.MISSING,
                    allowed_mentions=QUIET,
                    wait=True,
                    thread=thread if thread is not None else discord.utils.MISSING,
                )
            if is_opus(clip):
                try:
                    return await send_voice_message(self.channel, clip, QUIET)
                except discord.HTTPException as exc:  # e.g. voice messages not allowed here
                    log.info("voice message refused (%s); sending a plain attachment", exc)
            return await self.channel.send(file=plain_file(clip), allowed_mentions=QUIET)
        except discord.HTTPException as exc:
            log.warning("voice clip not delivered: %s", exc)
            return None

    def _reference(self) -> discord.MessageReference:
        """The message answered; posting unprompted, none (discord.py takes None, though its overloads omit it)."""
        if self.message is None:
            return cast(discord.MessageReference, None)
        return self.message.to_reference(fail_if_not_exists=False)
