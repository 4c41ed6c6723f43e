"""Stage 3, look: pictures posted to the character go to a model that can see them.

Runs after the gate (only pictures sent with an @, in a reply to the character or in a direct chat
are looked at). The pictures travel in `Exchange.images` to the prompt as `image_url` parts and are
never stored: memory keeps "[图片]" and the caption. With a model that cannot see, nothing changes
here and the guard answers a picture alone with the character's "I can't see pictures" line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.pipeline.exchange import Exchange
from core.images import Image, ImageGate
from core.serving import ServerProfile
from persona.lines import in_language

log = logging.getLogger(__name__)

POSTED = {"zh": "[图片]", "en": "[picture]", "ja": "[画像]"}


class Look:
    """Checks the message's pictures against [llm]'s limits and hands them on when the model can see."""

    def __init__(self, gate: ImageGate, profile: ServerProfile, probe: Callable[[], Awaitable[object]] | None = None):
        self.gate = gate
        self.profile = profile
        self.probe = probe  # asks the server what it is (and whether it sees) before the first picture

    async def __call__(self, ex: Exchange) -> Exchange:
        """The exchange with `images` set and the message marked as holding a picture, when the model can see."""
        pictures = [a for a in ex.incoming.attachments if a.kind == "image" and a.url]
        if not pictures:
            return ex
        if self.probe is not None:
            await self.probe()
        if not self.profile.vision:
            return ex
        prepared = await self.gate.prepare([Image(url=a.url, mime=a.mime, size=a.size) for a in pictures])
        for rejected in prepared.rejected:
            log.info("picture not shown to the model (%s): %s", rejected.reason, rejected.detail)
        if not prepared.images:
            return ex
        mark = in_language(POSTED, ex.persona.card.language)
        return replace(ex, images=prepared.images, text=f"{mark} {ex.text}".strip())

    async def close(self) -> None:
        """Release the download client."""
        await self.gate.close()
