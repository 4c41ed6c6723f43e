"""Voice clips as Discord voice messages: an Ogg/Opus attachment with duration and waveform."""

from __future__ import annotations

import base64
import io
from typing import Any

import discord
import numpy as np
from discord.http import handle_message_parameters

from core.messages import Clip
from voice.audio import decode

VOICE_FLAG = discord.MessageFlags(voice=True)
WAVEFORM_POINTS = 64  # Discord draws up to 256 one-byte bars; fewer look the same in the client


class VoiceFile(discord.File):
    """A File whose attachment entry carries the voice-message fields discord.py's File omits."""

    def __init__(self, data: bytes, duration: float, waveform: str):
        super().__init__(io.BytesIO(data), filename="voice-message.ogg")
        self.duration = duration
        self.waveform = waveform

    def to_dict(self, index: int) -> dict[str, Any]:
        """The attachment entry of the upload, with `duration_secs` and `waveform`."""
        return {**super().to_dict(index), "duration_secs": round(self.duration, 2), "waveform": self.waveform}


def waveform_of(data: bytes, points: int = WAVEFORM_POINTS) -> str:
    """Base64 of `points` peak levels (0-255) of the clip; flat when it cannot be decoded."""
    try:
        samples = np.abs(decode(data).samples)
    except ValueError:
        samples = np.zeros(0, dtype=np.float32)
    if not len(samples):
        return base64.b64encode(bytes(points)).decode()
    peaks = np.array([chunk.max() if len(chunk) else 0.0 for chunk in np.array_split(samples, points)])
    top = float(peaks.max()) or 1.0
    return base64.b64encode(bytes(round(255 * p / top) for p in peaks)).decode()


def is_opus(clip: Clip) -> bool:
    """Only Ogg/Opus clips can be shown as voice messages."""
    return clip.format.lower() in ("ogg", "opus")


async def send_voice_message(
    channel: discord.abc.Messageable, clip: Clip, mentions: discord.AllowedMentions
) -> discord.Message:
    """Post the clip as a voice message through discord.py's own HTTP client (no text allowed)."""
    target = await channel._get_channel()
    state = target._state
    params = handle_message_parameters(
        file=VoiceFile(clip.data, clip.duration, waveform_of(clip.data)),
        flags=VOICE_FLAG,
        allowed_mentions=mentions,
    )
    with params:
        data = await state.http.send_message(target.id, params=params)
    return state.create_message(channel=target, data=data)


def plain_file(clip: Clip) -> discord.File:
    """The clip as an ordinary attachment (formats Discord cannot play as a voice message)."""
    ext = "ogg" if is_opus(clip) else clip.format.lower() or "bin"
    return discord.File(io.BytesIO(clip.data), filename=f"voice.{ext}")
