"""Audio samples and their encodings: Ogg/Opus for Discord, WAV for QQ and the terminal."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

# format name -> (libsndfile container, subtype); Opus is what Discord voice messages carry.
FORMATS: dict[str, tuple[str, str]] = {
    "ogg": ("OGG", "OPUS"),
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
EXTENSIONS = {".ogg": "ogg", ".opus": "ogg", ".oga": "ogg", ".wav": "wav", ".flac": "flac", ".mp3": "mp3"}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono float32 samples in [-1, 1] at `rate` Hz."""

    samples: np.ndarray
    rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.rate if self.rate else 0.0

    def clipped(self, max_seconds: float) -> Audio:
        """At most `max_seconds` long, with a short fade so the cut does not click."""
        limit = int(max_seconds * self.rate)
        if len(self.samples) <= limit:
            return self
        cut = self.samples[:limit].copy()
        fade = min(len(cut), int(0.05 * self.rate))
        if fade:
            cut[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return Audio(cut, self.rate)

    def resampled(self, rate: int) -> Audio:
        """The same sound at another sample rate (linear interpolation: fine for speech)."""
        if rate == self.rate or not len(self.samples):
            return Audio(self.samples, rate)
        n = max(1, round(len(self.samples) * rate / self.rate))
        x_new = np.linspace(0.0, len(self.samples) - 1, n)
        out = np.interp(x_new, np.arange(len(self.samples)), self.samples).astype(np.float32)
        return Audio(out, rate)


def format_of(path_suffix: str) -> str:
    """The clip format for a file extension like '.ogg'; ValueError when unknown."""
    fmt = EXTENSIONS.get(path_suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown audio extension {path_suffix!r}; use one of {', '.join(EXTENSIONS)}")
    return fmt


def encode(audio: Audio, fmt: str) -> bytes:
    """The audio as a file in `fmt` (see FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}; use one of {', '.join(FORMATS)}")
    container, subtype = FORMATS[fmt]
    if fmt == "ogg" and audio.rate not in OPUS_RATES:
        # Opus accepts only these rates; go up to the next one so nothing is lost.
        audio = audio.resampled(next((r for r in OPUS_RATES if r >= audio.rate), 48000))
    buf = io.BytesIO()
    pcm = np.clip(audio.samples, -1.0, 1.0)
    sf.write(buf, pcm, audio.rate, format=container, subtype=subtype)
    return buf.getvalue()


def decode(data: bytes) -> Audio:
    """Samples from an audio file's bytes (any format libsndfile reads); ValueError when unreadable."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"not audio libsndfile can read ({len(data)} bytes): {exc}") from exc
    return Audio(samples.mean(axis=1).astype(np.float32), int(rate))


def duration_of(data: bytes) -> float:
    """Seconds of audio in an encoded file."""
    info = sf.info(io.BytesIO(data))
    return float(info.frames) / info.samplerate if info.samplerate else 0.0


def loudness(audio: Audio) -> float:
    """Root-mean-square level (0 for silence)."""
    return float(np.sqrt(np.mean(np.square(audio.samples)))) if len(audio.samples) else 0.0

