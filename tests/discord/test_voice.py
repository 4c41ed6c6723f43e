"""Voice clips after the text: a real Ogg/Opus file sent as a Discord voice message."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from core.messages import Clip
from persona.card import Persona
from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, FakeDiscord
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"


def tone(seconds: float = 0.5, fmt: str = "OGG", subtype: str = "OPUS") -> bytes:
    """A real little clip: a rising sine, so the waveform is not flat."""
    rate = 48000
    t = np.linspace(0, seconds, int(rate * seconds), endpoint=False)
    samples = (np.sin(2 * np.pi * 440 * t) * np.linspace(0.1, 0.9, len(t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


class ToneVoice:
    """A Voice that answers with a fixed clip (or fails), standing in for the TTS engine."""

    def __init__(self, clip: Clip | None = None, error: Exception | None = None):
        self.clip, self.error = clip, error

    async def speak(self, persona: Persona, text: str, *, fmt: str = "ogg") -> Clip | None:
        if self.error:
            raise self.error
        return self.clip

    async def close(self) -> None:
        pass


def messages(fake: FakeDiscord) -> list[Any]:
    return fake.sent("POST", f"/channels/{CHANNEL_ID}/messages")


async def ask(connect: Any, fake: FakeDiscord, llm: FakeOpenAI, voice: ToneVoice, count: int) -> list[Any]:
    llm.push(Script(text="咱的声音。"))
    await connect(tts=voice, voice={"enabled": True})
    await fake.dispatch("MESSAGE_CREATE", fake.message(f"{MENTION} 说话", mentions=[BOT_USER]))
    return await fake.wait_for(lambda: len(messages(fake)) >= count and messages(fake))  # type: ignore[no-any-return]


async def test_the_clip_follows_the_text_as_a_voice_message(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    data = tone()
    text, note = await ask(connect, discord_server, llm, ToneVoice(Clip(data, "ogg", 0.5, "咱的声音。")), 2)
    assert text.body["content"] == "咱的声音。" and not text.files
    assert note.body["flags"] == 8192  # IS_VOICE_MESSAGE
    assert "content" not in note.body and note.body["allowed_mentions"]["parse"] == []
    (entry,) = note.body["attachments"]
    assert entry["duration_secs"] == 0.5
    levels = base64.b64decode(entry["waveform"])
    assert len(levels) == 64 and max(levels) == 255 and levels[0] < levels[-1]  # the tone rises
    assert note.files == [("voice-message.ogg", data)]


async def test_other_formats_go_as_a_plain_attachment(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    data = tone(fmt="WAV", subtype="PCM_16")
    _, attached = await ask(connect, discord_server, llm, ToneVoice(Clip(data, "wav", 0.5)), 2)
    assert attached.files == [("voice.wav", data)] and "flags" not in attached.body


async def test_a_failing_voice_leaves_the_text_alone(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    (text,) = await ask(connect, discord_server, llm, ToneVoice(error=RuntimeError("tts down")), 1)
    assert text.body["content"] == "咱的声音。"
    await discord_server.wait_for(lambda: "tts down" in caplog.text)
    await asyncio.sleep(0.2)  # the front-end had its chance to send something after the failure
    assert len(messages(discord_server)) == 1
