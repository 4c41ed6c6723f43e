"""Stage 2, listen: a voice message addressed to the character becomes its text.

Runs after the gate, so only voice messages the character answers are transcribed (an unaddressed
voice message in a busy group costs nothing). The transcript is the message text, marked as spoken
("（语音）…") so the history says how it was said; audio that cannot be fetched or understood gets
one of the character's "I couldn't hear that" lines instead of a model reply.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.pipeline.exchange import Exchange
from core.fetch import Fetcher, FetchError, FetchPolicy, host_of
from core.messages import Attachment
from persona.lines import canned, in_language
from voice.hearing import Heard, Transcriber

log = logging.getLogger(__name__)

SPOKEN = {"zh": "（语音）", "en": "(voice) ", "ja": "（音声）"}


def voice_of(ex: Exchange) -> Attachment | None:
    """The message's voice message or audio clip, if it has one."""
    return next((a for a in ex.incoming.attachments if a.kind in ("voice", "audio")), None)


async def fetch_audio(where: Attachment, max_bytes: int, fetcher: Fetcher) -> bytes | None:
    """The audio's bytes (http(s), base64://, or a file in a folder [fetch] allows); None if out of reach."""
    try:
        return await fetcher.get(where.url, max_bytes)
    except FetchError as exc:
        log.info("voice message not fetched (%s, from %s): %s", exc.reason, host_of(where.url), exc)
    return None


class Listen:
    """Transcribes the voice messages the character is about to answer."""

    def __init__(self, transcriber: Transcriber, policy: FetchPolicy | None = None):
        self.transcriber = transcriber
        self.fetcher = Fetcher(policy)

    async def __call__(self, ex: Exchange) -> Exchange:
        """The exchange with the transcript as its text, or a canned "couldn't hear" reply."""
        clip = voice_of(ex)
        if clip is None or ex.text.strip():
            return ex  # a caption or typed text says it already
        card = ex.persona.card
        available = self.transcriber.available  # with no transcription server, nothing is downloaded
        data = await fetch_audio(clip, self.transcriber.cfg.stt_max_bytes, self.fetcher) if available else None
        heard = await self.transcriber.transcribe(data, language=self.transcriber.cfg.stt_language) if data else None
        if isinstance(heard, Heard) and heard.text.strip():
            return replace(ex, text=in_language(SPOKEN, card.language) + heard.text.strip())
        why = heard.reason if heard is not None and not isinstance(heard, Heard) else (
            "unreachable" if available else "no [voice] stt_url")
        log.info("voice message from %s:%s not heard (%s)", ex.incoming.platform, ex.incoming.user_id, why)
        reply = canned(ex.persona, "not_heard", ex.incoming)
        if ex.sink:
            await ex.sink(reply.text)
        return replace(ex, draft=reply.text, mode="canned", reply=reply)

    async def close(self) -> None:
        """Release the HTTP clients."""
        await self.fetcher.close()
        await self.transcriber.close()

