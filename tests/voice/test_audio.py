"""Encodings (Opus needs its own sample rates), duration caps and the bounded clip cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.voice.vits_server import speech_like
from voice.audio import Audio, decode, duration_of, encode, format_of, loudness
from voice.cache import ClipCache, clip_key


@pytest.mark.parametrize("fmt", ["ogg", "wav", "flac", "mp3"])
def test_every_format_round_trips(fmt: str) -> None:
    audio = Audio(speech_like("あいうえおかきくけこ"), 22050)
    data = encode(audio, fmt)
    back = decode(data)
    assert abs(back.duration - audio.duration) < 0.06
    assert abs(duration_of(data) - audio.duration) < 0.06
    assert loudness(back) > 0.1
    if fmt == "ogg":
        assert data[:4] == b"OggS" and b"OpusHead" in data[:100]
        assert back.rate == 24000  # 22050 is not an Opus rate: raised to the next one


def test_clip_cap_and_extensions() -> None:
    audio = Audio(np.full(24000 * 5, 0.5, np.float32), 24000)
    cut = audio.clipped(2.0)
    assert cut.duration == 2.0 and cut.samples[-1] == 0.0 and cut.samples[0] == 0.5
    assert audio.clipped(10.0) is audio
    assert format_of(".OGG") == "ogg" and format_of(".opus") == "ogg" and format_of(".wav") == "wav"
    with pytest.raises(ValueError, match="unknown audio extension"):
        format_of(".silk")
    with pytest.raises(ValueError, match="not audio"):
        decode(b"<html>oops</html>")


def test_cache_keys_depend_on_everything_that_changes_the_sound() -> None:
    base = clip_key("kokoro", "jf_alpha", "はい", {"speed": 1.0}, "ogg")
    assert base == clip_key("kokoro", "jf_alpha", "はい", {"speed": 1.0}, "ogg")
    others = {
        clip_key("vits", "jf_alpha", "はい", {"speed": 1.0}, "ogg"),
        clip_key("kokoro", "jm_kumo", "はい", {"speed": 1.0}, "ogg"),
        clip_key("kokoro", "jf_alpha", "いいえ", {"speed": 1.0}, "ogg"),
        clip_key("kokoro", "jf_alpha", "はい", {"speed": 1.2}, "ogg"),
        clip_key("kokoro", "jf_alpha", "はい", {"speed": 1.0}, "wav"),
    }
    assert base not in others and len(others) == 5


def test_cache_stays_under_its_bound_dropping_least_recently_used(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path, max_bytes=2500)
    for i, key in enumerate("abc"):
        cache.put(key, "wav", bytes([i]) * 1000)
        past = time.time() - 100 + i * 10
        os.utime(cache.folder / f"{key}.wav", (past, past))
    assert cache.get("a", "wav") is None  # 3000 bytes did not fit: the oldest went
    assert cache.get("b", "wav") == b"\x01" * 1000  # a hit makes b the newest
    cache.put("d", "wav", b"\x03" * 1000)
    assert cache.get("c", "wav") is None and cache.get("b", "wav") is not None
    assert cache.size() <= 2500
    cache.put("huge", "wav", b"x" * 3000)
    assert cache.get("huge", "wav") is None


def test_zero_size_turns_the_cache_off(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path, max_bytes=0)
    cache.put("a", "wav", b"data")
    assert cache.get("a", "wav") is None and not (tmp_path / "v1").exists()

