"""The voice service as built from config: engine choice, trimming, translation, cache, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.llm import OpenAIChat
from persona.library import PersonaLibrary
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.voice.vits_server import FakeVits
from voice import build_voice
from voice.base import VoiceError
from voice.service import capped, speakable

ROOT = Path(__file__).resolve().parents[2]


def persona(pid: str = "horo"):  # type: ignore[no-untyped-def]
    return PersonaLibrary([ROOT / "persona"]).get(pid)


def test_stage_directions_are_not_spoken_and_long_text_is_cut_at_a_sentence() -> None:
    assert speakable("（摇了摇尾巴）咱饿了。*叹气* 看 https://x.y/z 【旁白】吧") == "咱饿了。 看 吧"
    assert capped("一二三。四五六。七八九。", 9) == "一二三。四五六。"
    assert capped("一二三四五六七八九", 4) == "一二三四"
    assert capped("短。", 10) == "短。"


def test_engine_choice_follows_config_and_card(make_settings: MakeSettings, vits: FakeVits) -> None:
    horo = persona()
    kokoro_only = build_voice(make_settings(voice={"engine": "auto"}), None)
    assert kokoro_only.route(horo).engine.name == "kokoro" and kokoro_only.route(horo).speaker == "jf_alpha"
    forced = build_voice(make_settings(voice={"engine": "vits", "vits_url": vits.url}), None)
    route = forced.route(horo)
    assert (route.engine.name, route.speaker, route.language) == ("vits", "0", "ja")
    assert "kokoro" not in forced.engines
    auto = build_voice(make_settings(voice={"engine": "auto", "vits_url": vits.url}), None)
    assert auto.route(horo).engine.name == "kokoro"  # the card asks for kokoro
    assert auto.route(persona("wukong")).speaker == "jm_kumo"


async def test_clip_from_vits_is_translated_trimmed_and_cached(
    make_settings: MakeSettings, vits: FakeVits, llm: FakeOpenAI
) -> None:
    settings = make_settings(voice={"engine": "vits", "vits_url": vits.url, "max_chars": 12}, llm={"base_url": llm.base_url})
    llm.default = Script(text="わっちは腹が減った。")
    model = OpenAIChat(settings.llm)
    voice = build_voice(settings, model)
    try:
        clip = await voice.speak(persona(), "（摇尾巴）咱饿了。汝去买苹果吧。然后我们一起出发去约伊兹。", fmt="ogg")
        again = await voice.speak(persona(), "（摇尾巴）咱饿了。汝去买苹果吧。然后我们一起出发去约伊兹。", fmt="ogg")
    finally:
        await voice.close()
        await model.close()
    assert clip is not None and again is not None
    assert clip.text == "わっちは腹が減った。" and clip.format == "ogg" and clip.data[:4] == b"OggS"
    assert clip.duration > 0.5 and abs(again.duration - clip.duration) < 0.05 and again.data == clip.data
    (req,) = llm.requests
    assert req["messages"][1]["content"] == "咱饿了。汝去买苹果吧。"  # direction gone, cut to max_chars
    assert len(vits.received) == 1  # the second clip came from the cache
    assert list((settings.bot.data_dir / "voice-cache" / "v1").glob("*.ogg"))


async def test_clip_is_capped_by_max_seconds(make_settings: MakeSettings, vits: FakeVits) -> None:
    settings = make_settings(voice={"engine": "vits", "vits_url": vits.url, "max_seconds": 1.0, "cache_mb": 0})
    voice = build_voice(settings, None)
    try:
        clip = await voice.speak(persona(), "わっちは賢狼ホロじゃ。ぬしはたわけじゃな。", fmt="wav")
    finally:
        await voice.close()
    assert clip is not None and clip.duration == pytest.approx(1.0, abs=0.01)


async def test_offline_speaks_only_japanese(make_settings: MakeSettings, vits: FakeVits) -> None:
    settings = make_settings(voice={"engine": "vits", "vits_url": vits.url}, llm={"provider": "offline"})
    voice = build_voice(settings, None)
    try:
        assert await voice.speak(persona(), "咱是贤狼。", fmt="wav") is None
        clip = await voice.speak(persona(), "汝はたわけじゃ。", fmt="wav")
    finally:
        await voice.close()
    assert clip is not None and clip.text == "ぬしはたわけじゃ。"
    assert [r.params["text"] for r in vits.received] == ["ぬしはたわけじゃ。"]


async def test_a_slow_engine_hits_the_timeout(make_settings: MakeSettings, vits: FakeVits) -> None:
    vits.delay = 3.0
    settings = make_settings(voice={"engine": "vits", "vits_url": vits.url, "timeout": 0.3})
    voice = build_voice(settings, None)
    try:
        with pytest.raises(VoiceError, match=r"timed out|timeout"):
            await voice.speak(persona(), "はい。", fmt="wav")
        with pytest.raises(ValueError, match="unknown clip format"):
            await voice.speak(persona(), "はい。", fmt="silk")
    finally:
        await voice.close()


async def test_separate_translator_endpoint_is_used(make_settings: MakeSettings, vits: FakeVits, llm: FakeOpenAI) -> None:
    settings = make_settings(
        llm={"provider": "offline"},
        voice={"engine": "vits", "vits_url": vits.url, "translator_base_url": llm.base_url, "translator_model": "mt"},
    )
    llm.default = Script(text="はい、ぬし。")
    voice = build_voice(settings, None)
    try:
        clip = await voice.speak(persona(), "好的，汝。", fmt="wav")
    finally:
        await voice.close()
    assert clip is not None and clip.text == "はい、ぬし。"
    assert llm.requests[0]["model"] == "mt"


async def test_card_parameters_reach_vits(make_settings: MakeSettings, vits: FakeVits) -> None:
    from dataclasses import replace as dc_replace

    horo = persona()
    spec = horo.card.voice.model_copy(update={"engine": "vits", "speaker": "0", "params": {"noise": 0.667, "noisew": 0.6, "length": 1.176}})
    tuned = dc_replace(horo, card=horo.card.model_copy(update={"voice": spec}))
    voice = build_voice(make_settings(voice={"vits_url": vits.url, "cache_mb": 0}), None)
    try:
        assert await voice.speak(tuned, "わっちは賢狼じゃ。", fmt="wav") is not None
    finally:
        await voice.close()
    sent = vits.received[-1].params
    assert (float(sent["noise"]), float(sent["noisew"]), float(sent["length"])) == (0.667, 0.6, 1.176)
