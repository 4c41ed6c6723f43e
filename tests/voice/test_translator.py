"""The translation chain through a real OpenAI-compatible server: glossary, budget, cache, skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import LLMConfig
from core.llm import OpenAIChat
from persona.library import PersonaLibrary
from tests.support.openai_server import FakeOpenAI, Script
from voice.base import VoiceError
from voice.language import apply_glossary, language_of
from voice.translator import ModelTranslator, clean_translation, translation_budget

ROOT = Path(__file__).resolve().parents[2]


def horo():  # type: ignore[no-untyped-def]
    return PersonaLibrary([ROOT / "persona"]).get("horo")


async def test_glossary_and_tone_reach_the_prompt_and_only_the_translation_comes_back(llm: FakeOpenAI) -> None:
    llm.push(Script(text="「わっちは賢狼ホロじゃ。ぬしはたわけかや？」"))
    model = OpenAIChat(LLMConfig(base_url=llm.base_url, model="m"))
    translator = ModelTranslator(model)
    try:
        out = await translator.translate(horo(), "咱是贤狼赫萝。汝是笨蛋吗？", "ja")
    finally:
        await model.close()
    assert out == "わっちは賢狼ホロじゃ。ぬしはたわけかや？"
    (body,) = llm.requests
    system, user = body["messages"]
    assert user["content"] == "咱是贤狼赫萝。汝是笨蛋吗？"
    assert "咱 → わっち" in system["content"] and "汝 → ぬし" in system["content"]
    assert "赫萝 → ホロ" in system["content"] and "罗伦斯" not in system["content"]  # only terms that occur
    assert "Japanese" in system["content"] and "Output only" in system["content"]
    sent = body.get("max_completion_tokens", body.get("max_tokens"))
    assert sent == translation_budget("咱是贤狼赫萝。汝是笨蛋吗？")
    assert body["temperature"] == 0.3


def test_budget_grows_with_the_text_so_long_replies_are_not_cut() -> None:
    assert translation_budget("好") < translation_budget("好" * 100)
    assert translation_budget("好" * 200) >= 600  # an earlier bot cut everything at 128 tokens


async def test_same_text_is_translated_once(llm: FakeOpenAI) -> None:
    llm.default = Script(text="りんごが好きじゃ。")
    model = OpenAIChat(LLMConfig(base_url=llm.base_url, model="m"))
    translator = ModelTranslator(model)
    try:
        first = await translator.translate(horo(), "咱喜欢苹果。", "ja")
        second = await translator.translate(horo(), "咱喜欢苹果。", "ja")
        await translator.translate(horo(), "咱不喜欢苹果。", "ja")
    finally:
        await model.close()
    assert first == second == "りんごが好きじゃ。"
    assert len(llm.requests) == 2 and translator.calls == 2


async def test_an_untranslated_answer_gives_no_clip_text(llm: FakeOpenAI) -> None:
    llm.push(Script(text="咱是贤狼。"))
    model = OpenAIChat(LLMConfig(base_url=llm.base_url, model="m"))
    try:
        assert await ModelTranslator(model).translate(horo(), "咱是贤狼。", "ja") is None
    finally:
        await model.close()


async def test_japanese_text_is_not_sent_to_the_model(llm: FakeOpenAI) -> None:
    model = OpenAIChat(LLMConfig(base_url=llm.base_url, model="m"))
    translator = ModelTranslator(model)
    try:
        out = await translator.translate(horo(), "汝はたわけじゃな。", "ja")
    finally:
        await model.close()
    assert out == "ぬしはたわけじゃな。"  # the glossary still applies
    assert llm.requests == []


async def test_offline_keeps_japanese_and_drops_the_rest() -> None:
    translator = ModelTranslator(None)
    assert await translator.translate(horo(), "咱は賢狼じゃ。", "ja") == "わっちは賢狼じゃ。"
    assert await translator.translate(horo(), "咱是贤狼。", "ja") is None


async def test_model_failure_is_a_voice_error(llm: FakeOpenAI) -> None:
    llm.push(Script(status=503, error="overloaded"))
    model = OpenAIChat(LLMConfig(base_url=llm.base_url, model="m"))
    translator = ModelTranslator(model)
    try:
        with pytest.raises(VoiceError, match="translation failed"):
            await translator.translate(horo(), "你好。", "ja")
    finally:
        await model.close()


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("わっちは賢狼じゃ。", "ja"),
        ("今日は雨です", "ja"),
        ("咱是贤狼赫萝，你们这些人。", "zh"),
        ("我们去吃苹果吧", "zh"),
        ("hello there", "en"),
        ("……", ""),
    ],
)
def test_language_detection(text: str, lang: str) -> None:
    assert language_of(text) == lang


def test_glossary_prefers_the_longest_term_and_cleaning_strips_wrappers() -> None:
    assert apply_glossary("罗伦斯和罗", {"罗": "ロ", "罗伦斯": "ロレンス"}) == "ロレンス和ロ"
    assert clean_translation("```\nTranslation: 「はい」\n```") == "はい"
    assert clean_translation("翻訳：ぬしよ") == "ぬしよ"
