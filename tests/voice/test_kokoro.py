"""The embedded engine synthesizes real Japanese speech off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from voice.audio import decode, encode, loudness
from voice.base import VoiceError
from voice.kokoro import KokoroEngine

pytestmark = pytest.mark.slow  # the real voice model


@pytest.fixture(scope="module")
def kokoro() -> Iterator[KokoroEngine]:
    """One engine for the module: the model loads once."""
    engine = KokoroEngine()
    yield engine
    engine._pool.shutdown(wait=True)


async def test_real_clip_has_duration_and_is_not_silence(kokoro: KokoroEngine) -> None:
    audio = await kokoro.synthesize("わっちは賢狼ホロじゃ。", "jf_alpha", "ja")
    assert audio.rate == 24000
    assert 0.5 < audio.duration < 10
    assert loudness(audio) > 0.01
    back = decode(encode(audio, "ogg"))  # Opus at 24 kHz, as Discord gets it
    assert back.rate == 24000 and abs(back.duration - audio.duration) < 0.1
    assert loudness(back) > 0.01


async def test_the_event_loop_keeps_running_during_synthesis(kokoro: KokoroEngine) -> None:
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    audio = await kokoro.synthesize("ぬしはたわけじゃな。りんごをくれぬか？", "jm_kumo", "ja")
    took = time.perf_counter() - started
    stop = True
    await task
    assert audio.duration > 1.5 and loudness(audio) > 0.01
    assert ticks >= took / 0.01 * 0.3  # the loop ticked through most of the synthesis


async def test_unknown_voice_and_language_are_voice_errors(kokoro: KokoroEngine) -> None:
    with pytest.raises(VoiceError, match=r"no voice 'zf_xiaoxiao'.*jf_alpha"):
        await kokoro.synthesize("はい。", "zf_xiaoxiao", "ja")
    with pytest.raises(VoiceError, match="Japanese only"):
        await kokoro.synthesize("你好", "jf_alpha", "zh")
