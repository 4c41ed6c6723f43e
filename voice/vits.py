"""A client for vits-simple-api (/voice/speakers, /voice/vits, /voice/bert-vits2, /voice/gpt-sovits)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

from voice.audio import Audio, decode
from voice.base import VoiceError

Model = Literal["vits", "bert-vits2", "gpt-sovits"]
ParamValue = str | int | float

# The server's key in /voice/speakers for each synthesis route.
SPEAKER_KEYS: dict[Model, str] = {"vits": "VITS", "bert-vits2": "BERT-VITS2", "gpt-sovits": "GPT-SOVITS"}
_COMMON = {"length", "noise", "noisew", "segment_size"}
PARAMS: dict[Model, frozenset[str]] = {
    "vits": frozenset(_COMMON),
    "bert-vits2": frozenset(_COMMON | {"sdp_ratio", "emotion", "style_text", "style_weight"}),
    "gpt-sovits": frozenset(
        {"segment_size", "preset", "reference_audio", "prompt_text", "prompt_lang", "top_k", "top_p", "temperature", "speed"}
    ),
}
AUDIO_FORMATS = ("wav", "ogg", "silk", "mp3", "flac")
LANGS = ("auto", "zh", "ja", "mix")


@dataclass(frozen=True, slots=True)
class Speaker:
    """One speaker a model on the server offers."""

    id: int
    name: str
    lang: tuple[str, ...] = ()


class VitsClient:
    """Async HTTP client; every failure becomes a VoiceError that says what to fix."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-KEY": api_key} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/", headers=headers, timeout=timeout, transport=transport
        )

    async def speakers(self) -> dict[str, list[Speaker]]:
        """Speakers per model type ("VITS", "BERT-VITS2", "GPT-SOVITS", ...)."""
        resp = await self._call("GET", "voice/speakers")
        try:
            raw = resp.json()
            return {
                kind: [Speaker(int(s["id"]), str(s["name"]), _langs(s.get("lang"))) for s in entries]
                for kind, entries in raw.items()
                if isinstance(entries, list)
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VoiceError(f"vits-simple-api at {self.base_url}: /voice/speakers is not a speaker list") from exc

    async def synthesize(
        self,
        model: Model,
        text: str,
        speaker_id: int,
        *,
        fmt: str = "wav",
        lang: str = "auto",
        params: Mapping[str, ParamValue] | None = None,
    ) -> bytes:
        """The audio file bytes for `text` spoken by `speaker_id`."""
        if fmt not in AUDIO_FORMATS:
            raise ValueError(f"format must be one of {AUDIO_FORMATS}")
        form: dict[str, str] = {"text": text, "id": str(speaker_id), "format": fmt, "lang": lang}
        for key, value in (params or {}).items():
            if key not in PARAMS[model]:
                raise ValueError(f"/voice/{model} takes no parameter {key!r} (known: {', '.join(sorted(PARAMS[model]))})")
            # The server reads booleans with bool(str): "false" would mean true, so none are sent.
            if isinstance(value, bool):
                raise ValueError(f"{key}: boolean parameters are misread by vits-simple-api; leave it out")
            form[key] = str(value)
        resp = await self._call("POST", f"voice/{model}", data=form)
        if resp.headers.get("content-type", "").startswith("application/json"):
            raise VoiceError(f"vits-simple-api /voice/{model}: {_message(resp)}")
        return resp.content

    async def _call(self, method: str, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, data=data)
        except httpx.TimeoutException as exc:
            raise VoiceError(f"vits-simple-api at {self.base_url} timed out on /{path} ([voice] timeout)") from exc
        except httpx.HTTPError as exc:
            raise VoiceError(
                f"cannot reach vits-simple-api at {self.base_url} ({type(exc).__name__}); start it or fix [voice] vits_url"
            ) from exc
        if resp.status_code == 401:
            raise VoiceError(
                f"vits-simple-api at {self.base_url} rejected the API key (401 {_message(resp)}); set BOT_VOICE__VITS_API_KEY"
            )
        if resp.status_code >= 400:
            raise VoiceError(f"vits-simple-api /{path}: HTTP {resp.status_code}: {_message(resp)}")
        return resp

    async def close(self) -> None:
        """Release connections."""
        await self._http.aclose()


def _langs(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),) if value else ()


def _message(resp: httpx.Response) -> str:
    """The server's JSON error message, else the start of the body."""
    try:
        body = resp.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])[:300]
    except ValueError:
        pass
    return resp.text.strip()[:300] or resp.reason_phrase


class VitsEngine:
    """An Engine over one vits-simple-api model; card speakers are ids or names."""

    def __init__(self, client: VitsClient, model: Model, params: Mapping[str, ParamValue] | None = None):
        self.client = client
        self.model: Model = model
        self.name: str = model
        self._params = dict(params or {})
        self._ids: dict[str, int] = {}

    def params(self) -> dict[str, object]:
        """Server and model parameters (part of the cache key)."""
        return {"server": self.client.base_url, **self._params}

    async def speaker_id(self, speaker: str) -> int:
        """The numeric id for a card speaker: digits as they are, names looked up on the server."""
        if speaker.strip().isdigit():
            return int(speaker)
        if speaker not in self._ids:
            found = (await self.client.speakers()).get(SPEAKER_KEYS[self.model], [])
            self._ids.update({s.name: s.id for s in found})
            if speaker not in self._ids:
                names = ", ".join(s.name for s in found[:20]) or "none"
                raise VoiceError(f"vits-simple-api has no {SPEAKER_KEYS[self.model]} speaker {speaker!r} (have: {names})")
        return self._ids[speaker]

    async def synthesize(
        self, text: str, speaker: str, language: str, params: Mapping[str, ParamValue] | None = None
    ) -> Audio:
        """Ask the server for a WAV and decode it; the card's parameters override the engine's."""
        sid = await self.speaker_id(speaker)
        lang = language if language in LANGS else "auto"
        merged = {**self._params, **(params or {})}
        data = await self.client.synthesize(self.model, text, sid, fmt="wav", lang=lang, params=merged)
        try:
            return decode(data)
        except ValueError as exc:
            raise VoiceError(f"vits-simple-api /voice/{self.model} sent {exc}") from exc

    async def close(self) -> None:
        """The client is owned by whoever built it."""
