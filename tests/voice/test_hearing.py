"""Voice messages in: transcription against a local server that speaks the real API."""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import pysilk
import pytest
import soundfile as sf

from core.config import VoiceConfig
from tests.support.ports import free_port
from tests.support.stt_server import FakeTranscriber, sniff
from voice.hearing import Heard, NotHeard, Transcriber, audio_format, silk_to_wav


def pcm(seconds: float, rate: int) -> bytes:
    """A spoken-like tone (220 Hz, wavering) as 16-bit mono samples."""
    n = int(seconds * rate)
    return struct.pack(
        f"<{n}h",
        *(int(9000 * math.sin(2 * math.pi * 220 * i / rate) * (0.6 + 0.4 * math.sin(6 * math.pi * i / rate))) for i in range(n)),
    )


def wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm(seconds, rate))
    return out.getvalue()


def silk(seconds: float = 1.0, rate: int = 24000) -> bytes:
    """A real QQ-style SILK file (with the 0x02 prefix), made by the package's encoder."""
    out = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm(seconds, rate)), out, rate, 24000)
    return out.getvalue()


def opus(seconds: float = 1.0) -> bytes:
    """Ogg/Opus, as a Discord voice message carries it."""
    samples = np.frombuffer(pcm(seconds, 48000), dtype="<i2").astype(np.float32) / 32768
    out = io.BytesIO()
    sf.write(out, samples, 48000, format="OGG", subtype="OPUS")
    return out.getvalue()




@pytest.fixture
def stt() -> Iterator[FakeTranscriber]:
    with FakeTranscriber(text="  汝说什么？ ") as server:
        yield server


def hearing(url: str, **kw: Any) -> Transcriber:
    return Transcriber(VoiceConfig(stt_url=url, **kw))


async def test_a_wav_clip_is_transcribed(stt: FakeTranscriber) -> None:
    stt.api_key = "sk-stt"
    ears = hearing(stt.url, stt_api_key="sk-stt", stt_language="zh")
    heard = await ears.transcribe(wav(1.5))
    assert heard == Heard("汝说什么？", 1.5)
    [upload] = stt.uploads
    assert (upload.model, upload.language, upload.response_format) == ("whisper-1", "zh", "json")
    assert (upload.filename, upload.content_type) == ("voice.wav", "audio/wav")
    assert upload.data == wav(1.5) and upload.headers["authorization"] == "Bearer sk-stt"
    await ears.close()


async def test_the_v1_suffix_and_a_language_per_call(stt: FakeTranscriber) -> None:
    ears = hearing(stt.url + "/v1/", stt_model="large-v3")
    stt.models = ("large-v3",)
    assert isinstance(await ears.transcribe(wav(), language="ja"), Heard)
    assert (stt.uploads[0].model, stt.uploads[0].language) == ("large-v3", "ja")
    await ears.close()


async def test_a_discord_voice_message_is_sent_as_it_is(stt: FakeTranscriber) -> None:
    clip = opus(1.0)
    ears = hearing(stt.url)
    heard = await ears.transcribe(clip)
    assert isinstance(heard, Heard) and heard.seconds == pytest.approx(1.0, abs=0.05)
    assert stt.uploads[0].data == clip and stt.uploads[0].filename == "voice.ogg"
    await ears.close()


async def test_a_qq_silk_voice_message_is_converted_to_wav(stt: FakeTranscriber) -> None:
    clip = silk(2.0)
    assert clip.startswith(b"\x02#!SILK_V3") and audio_format(clip) == "silk"
    ears = hearing(stt.url)
    heard = await ears.transcribe(clip)
    assert isinstance(heard, Heard) and heard.seconds == pytest.approx(2.0, abs=0.1)
    upload = stt.uploads[0]
    assert sniff(upload.data) == "wav" and upload.filename == "voice.wav"
    samples, rate = sf.read(io.BytesIO(upload.data), dtype="float32")
    assert rate == 16000 and float(np.sqrt(np.mean(samples**2))) > 0.05  # the tone survived, not silence
    await ears.close()


def test_silk_without_the_tencent_prefix_decodes_too() -> None:
    out = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm(0.5, 24000)), out, 24000, 24000, tencent=False)
    assert out.getvalue().startswith(b"#!SILK_V3") and audio_format(out.getvalue()) == "silk"
    assert sniff(silk_to_wav(out.getvalue())) == "wav"


async def test_broken_silk_is_unreadable_and_amr_is_unsupported(stt: FakeTranscriber) -> None:
    ears = hearing(stt.url)
    whole = silk(1.0)
    broken = await ears.transcribe(whole[: len(whole) // 2])  # cut off mid-packet
    hollow = await ears.transcribe(b"\x02#!SILK_V3")  # a header and no audio
    amr = await ears.transcribe(b"#!AMR\n" + b"\x3c" * 200)
    junk = await ears.transcribe(b"<html>not audio</html>")
    assert isinstance(broken, NotHeard) and broken.reason == "unreadable"
    assert isinstance(hollow, NotHeard) and hollow.reason == "unreadable"
    assert isinstance(amr, NotHeard) and amr.reason == "unsupported" and "AMR" in amr.detail
    assert isinstance(junk, NotHeard) and junk.reason == "unsupported"
    assert stt.uploads == []  # nothing was sent
    await ears.close()


async def test_without_the_silk_package_the_answer_says_what_to_install(
    stt: FakeTranscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pysilk", None)  # as if silk-python were not installed
    ears = hearing(stt.url)
    heard = await ears.transcribe(silk(0.5))
    assert isinstance(heard, NotHeard) and heard.reason == "unsupported" and "silk-python" in heard.detail
    await ears.close()


async def test_too_large_and_too_long_are_refused_before_sending(stt: FakeTranscriber) -> None:
    ears = hearing(stt.url, stt_max_bytes=20_000, stt_max_seconds=1.0)
    large = await ears.transcribe(wav(1.0) + b"\x00" * 20_000)
    short = await ears.transcribe(wav(0.5, rate=8000))
    longer = await ears.transcribe(silk(1.5))  # small as SILK; its length is known once decoded
    assert isinstance(large, NotHeard) and large.reason == "too_large" and "stt_max_bytes" in large.detail
    assert isinstance(short, Heard)
    assert isinstance(longer, NotHeard) and longer.reason == "too_long" and "stt_max_seconds" in longer.detail
    assert len(stt.uploads) == 1
    await ears.close()


async def test_a_server_that_is_down_or_failing_is_a_result_not_an_exception(stt: FakeTranscriber) -> None:
    down = hearing(f"http://127.0.0.1:{free_port()}", stt_timeout=2.0)
    heard = await down.transcribe(wav())
    assert isinstance(heard, NotHeard) and heard.reason == "unavailable" and "ConnectError" in heard.detail
    await down.close()
    ears = hearing(stt.url)
    stt.fail_status = 503
    failing = await ears.transcribe(wav())
    assert isinstance(failing, NotHeard) and failing.reason == "unavailable" and "HTTP 503" in failing.detail
    stt.fail_status, stt.api_key = 0, "sk-right"
    refused = await ears.transcribe(wav())
    assert isinstance(refused, NotHeard) and refused.reason == "unavailable" and "Incorrect API key" in refused.detail
    await ears.close()
    unset = await hearing("").transcribe(wav())
    assert isinstance(unset, NotHeard) and unset.reason == "unavailable" and "stt_url" in unset.detail


async def test_an_unknown_model_and_an_empty_transcript(stt: FakeTranscriber) -> None:
    ears = hearing(stt.url, stt_model="no-such-model")
    missing = await ears.transcribe(wav())
    assert isinstance(missing, NotHeard) and "no-such-model" in missing.detail
    await ears.close()
    ears = hearing(stt.url)
    stt.text = "   "
    silent = await ears.transcribe(wav())
    assert isinstance(silent, NotHeard) and silent.reason == "empty"
    await ears.close()


def test_audio_formats_are_told_by_their_first_bytes() -> None:
    assert audio_format(wav()) == "wav" and audio_format(opus()) == "ogg"
    assert audio_format(b"ID3\x04rest") == audio_format(b"\xff\xfb\x90\x00") == "mp3"
    assert audio_format(b"fLaC\x00") == "flac" and audio_format(b"\x1a\x45\xdf\xa3") == "webm"
    assert audio_format(b"\x00\x00\x00\x20ftypM4A ") == "m4a"
    assert audio_format(b"#!AMR-WB\n") == "amr" and audio_format(b"") == ""
