"""[voice]: translation and speech for voiced replies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from core.config.core import Section


class VoiceConfig(Section):
    """[voice]: off by default; per-persona voices come from the card."""

    enabled: bool = False
    engine: Literal["auto", "kokoro", "vits"] = "auto"
    vits_url: str = ""
    vits_api_key: SecretStr = SecretStr("")
    translator_base_url: str = ""
    translator_model: str = ""
    max_chars: int = Field(200, ge=1)
    max_seconds: float = Field(60.0, gt=0.0)
    timeout: float = Field(60.0, gt=0.0)
    cache_mb: int = Field(200, ge=0)
    stt_url: str = ""
    stt_model: str = "whisper-1"
    stt_api_key: SecretStr = SecretStr("")
    stt_language: str = ""
    stt_timeout: float = Field(60.0, gt=0.0)
    stt_max_bytes: int = Field(10_000_000, ge=1024)
    stt_max_seconds: float = Field(120.0, gt=0.0)
