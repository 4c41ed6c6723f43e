"""Voice messages in: audio to text through an OpenAI-compatible transcription server.

`Transcriber.transcribe(audio)` posts the file to `{stt_url}/v1/audio/transcriptions` (multipart:
file, model, language, response_format=json) and returns `Heard(text)` or `NotHeard(reason,
detail)`; it never raises on the message path. The format is told by the file's first bytes,
never by its name: QQ's SILK is decoded to WAV here (the silk-python package), AMR is refused as
unsupported, Discord's Ogg/Opus and the other formats the endpoint takes are sent as they are.
"""

from __future__ import annotations

import asyncio
import io
import logging
import wave
from dataclasses import dataclass
from typing import Literal

import httpx

from core.config import VoiceConfig

log = logging.getLogger(__name__)
SILK_RATE = 16000  # the rate SILK is decoded at: what speech recognisers resample to anyway
Reason = Literal["unsupported", "unreadable", "too_large", "too_long", "empty", "unavailable"]
# format -> (file name the server tells the format by, MIME type)
SENDABLE = {
    "wav": ("voice.wav", "audio/wav"),
    "ogg": ("voice.ogg", "audio/ogg"),
    "mp3": ("voice.mp3", "audio/mpeg"),
    "flac": ("voice.flac", "audio/flac"),
    "webm": ("voice.webm", "audio/webm"),
    "m4a": ("voice.m4a", "audio/mp4"),
}


@dataclass(frozen=True, slots=True)
class Heard:
    """What was said in a voice message."""

    text: str
    seconds: float | None = None  # the clip's length, where it could be told


@dataclass(frozen=True, slots=True)
class NotHeard:
    """Why a voice message gave no text; `detail` is one line for the log."""

    reason: Reason
    detail: str


Hearing = Heard | NotHeard


def audio_format(data: bytes) -> str:
    """The audio format told by the file's first bytes ("silk", "amr", a SENDABLE key), or ""."""
    if data.startswith((b"#!SILK_V3", b"\x02#!SILK_V3")):
        return "silk"
    if data.startswith(b"#!AMR"):
        return "amr"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"OggS"):
        return "ogg"
    if data.startswith(b"fLaC"):
        return "flac"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return ""


def silk_to_wav(data: bytes, rate: int = SILK_RATE) -> bytes:
    """A SILK file (QQ's, with or without the 0x02 prefix) as 16-bit mono WAV.

    ImportError without the silk-python package; ValueError when the SILK data is broken.
    """
    import pysilk  # an optional extra: QQ voice messages only

    pcm = io.BytesIO()
    try:
        pysilk.decode(io.BytesIO(data), pcm, rate)
    except Exception as exc:  # pysilk raises its own SilkError (an Exception) on bad data
        raise ValueError(f"not decodable SILK ({type(exc).__name__}: {exc})") from exc
    if not pcm.getvalue():
        raise ValueError("a SILK file with no audio in it")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.getvalue())
    return out.getvalue()


def _seconds(data: bytes, fmt: str) -> float | None:
    """The clip's length where it can be read cheaply (WAV, and what libsndfile reads), else None."""
    if fmt == "wav":
        try:
            with wave.open(io.BytesIO(data)) as w:
                return w.getnframes() / w.getframerate() if w.getframerate() else None
        except (wave.Error, EOFError):
            pass
    if fmt in ("wav", "ogg", "flac", "mp3"):
        try:
            import soundfile as sf

            info = sf.info(io.BytesIO(data))
            return float(info.frames) / info.samplerate if info.samplerate else None
        except Exception:  # libsndfile can't read it: the server may still (let it try)
            return None
    return None


class Transcriber:
    """Speech to text over HTTP; every failure is a `NotHeard`, never an exception."""

    def __init__(self, cfg: VoiceConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.cfg = cfg
        root = cfg.stt_url.strip().rstrip("/")
        self.root = root[: -len("/v1")] if root.endswith("/v1") else root
        key = cfg.stt_api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(cfg.stt_timeout, connect=min(5.0, cfg.stt_timeout))
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)

    @property
    def available(self) -> bool:
        """Whether a transcription server is configured ([voice] stt_url)."""
        return bool(self.root)

    async def transcribe(self, audio: bytes, *, language: str = "") -> Hearing:
        """The text spoken in `audio` (any format; converted where needed), or why there is none."""
        if not self.available:
            return NotHeard("unavailable", "no transcription server: set [voice] stt_url")
        if len(audio) > self.cfg.stt_max_bytes:
            return NotHeard("too_large", f"{len(audio)} bytes (the limit is [voice] stt_max_bytes = {self.cfg.stt_max_bytes})")
        fmt = audio_format(audio)
        if fmt == "amr":
            return NotHeard("unsupported", "an AMR voice message: no converter here (ask the OneBot side for a wav/mp3 file)")
        if fmt == "silk":
            try:
                audio, fmt = await asyncio.to_thread(silk_to_wav, audio), "wav"
            except ImportError:
                return NotHeard("unsupported", "a SILK voice message needs the silk-python package (pip install silk-python)")
            except ValueError as exc:
                return NotHeard("unreadable", str(exc))
        if fmt not in SENDABLE:
            return NotHeard("unsupported", f"not an audio format the server takes (starts {audio[:8]!r})")
        seconds = _seconds(audio, fmt)
        if seconds is not None and seconds > self.cfg.stt_max_seconds:
            limit = self.cfg.stt_max_seconds
            return NotHeard("too_long", f"{seconds:.0f} s (the limit is [voice] stt_max_seconds = {limit:g})")
        return await self._post(audio, fmt, language or self.cfg.stt_language, seconds)

    async def _post(self, audio: bytes, fmt: str, language: str, seconds: float | None) -> Hearing:
        name, mime = SENDABLE[fmt]
        fields = {"model": self.cfg.stt_model, "response_format": "json"}
        if language:
            fields["language"] = language
        url = f"{self.root}/v1/audio/transcriptions"
        try:
            resp = await self._http.post(url, data=fields, files={"file": (name, audio, mime)})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return NotHeard("unavailable", f"{url}: {type(exc).__name__}: {exc}"[:300])
        if resp.status_code != 200:
            reason: Reason = "unsupported" if resp.status_code in (400, 415) else "unavailable"
            if resp.status_code == 413:
                reason = "too_large"
            return NotHeard(reason, f"{url}: HTTP {resp.status_code}: {_message(resp)}")
        try:
            text = resp.json()["text"]
        except (ValueError, KeyError, TypeError):
            return NotHeard("unavailable", f"{url}: the answer is not a transcription: {resp.text[:120]!r}")
        if not isinstance(text, str) or not text.strip():
            return NotHeard("empty", "nothing was said (an empty transcript)")
        return Heard(text.strip(), seconds)

    async def close(self) -> None:
        """Release connections."""
        await self._http.aclose()


def _message(resp: httpx.Response) -> str:
    """The error message in an OpenAI-style error answer, else the start of the body."""
    try:
        err = resp.json().get("error")
        message = err.get("message") if isinstance(err, dict) else err or resp.json().get("detail")
    except (ValueError, AttributeError):
        message = None
    return str(message or resp.text)[:200]
