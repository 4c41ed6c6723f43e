"""The speak stage through the whole App: text first, format per platform, failures stay quiet."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from core.messages import Incoming, Platform
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.voice.vits_server import FakeVits
from voice.audio import decode


def dm(text: str, platform: Platform = "test", user: str = "u1") -> Incoming:
    return Incoming(platform=platform, channel_id=f"dm-{user}", user_id=user, display_name="罗伦斯", text=text, is_direct=True)


def is_translation(body: dict[str, Any]) -> bool:
    return "You translate" in body["messages"][0]["content"]


async def voiced_app(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits, **voice: Any) -> Any:
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "m"},
        voice={"enabled": True, "engine": "vits", "vits_url": vits.url, **voice},
    )
    return await app_factory(settings)


async def test_text_reply_comes_before_the_clip(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits) -> None:
    vits.delay = 1.0
    llm.default = Script(text="わっちは賢狼ホロじゃ。")
    app = await voiced_app(make_settings, app_factory, llm, vits)
    started = time.perf_counter()
    reply = await app.chain.handle(dm("你好"))
    text_at = time.perf_counter() - started
    assert reply is not None and reply.text == "わっちは賢狼ホロじゃ。"
    assert reply.voice is not None and not reply.voice.done()
    clip = await reply.voice
    clip_at = time.perf_counter() - started
    assert clip is not None and clip.format == "wav" and decode(clip.data).duration > 0.5
    assert text_at < 1.0 <= clip_at


@pytest.mark.parametrize(("platform", "fmt", "magic"), [("discord", "ogg", b"OggS"), ("qq", "wav", b"RIFF"), ("terminal", "wav", b"RIFF")])
async def test_clip_format_follows_the_platform(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits, platform: Platform, fmt: str, magic: bytes
) -> None:
    llm.default = Script(text="ぬしよ、りんごはまだかや？")
    app = await voiced_app(make_settings, app_factory, llm, vits)
    reply = await app.chain.handle(dm("嗨", platform))
    clip = await reply.voice
    assert clip.format == fmt and clip.data[:4] == magic


async def test_chinese_reply_is_translated_with_the_glossary(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits
) -> None:
    llm.responder = lambda body: Script(text="わっちは腹が減ったぞ、ぬし。") if is_translation(body) else Script(text="咱饿了，汝。")
    app = await voiced_app(make_settings, app_factory, llm, vits)
    reply = await app.chain.handle(dm("你饿吗"))
    clip = await reply.voice
    assert reply.text == "咱饿了，汝。"
    assert clip.text == "わっちは腹が減ったぞ、ぬし。"
    (translation,) = [b for b in llm.requests if is_translation(b)]
    assert "咱 → わっち" in translation["messages"][0]["content"]
    assert vits.received[0].params["text"] == "わっちは腹が減ったぞ、ぬし。"


async def test_engine_failure_leaves_the_text_alone(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits, caplog: pytest.LogCaptureFixture
) -> None:
    vits.fail = "model crashed"
    llm.default = Script(text="わっちは元気じゃ。")
    app = await voiced_app(make_settings, app_factory, llm, vits)
    with caplog.at_level(logging.WARNING, logger="bot.pipeline.stages.speak"):
        reply = await app.chain.handle(dm("你好吗"))
        assert reply.text == "わっちは元気じゃ。"
        assert await reply.voice is None
    assert "model crashed" in caplog.text


async def test_translation_failure_leaves_the_text_alone(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits
) -> None:
    llm.responder = lambda body: Script(status=500, error="down") if is_translation(body) else Script(text="咱在这儿。")
    app = await voiced_app(make_settings, app_factory, llm, vits)
    reply = await app.chain.handle(dm("你在吗"))
    assert reply.text == "咱在这儿。" and reply.mode == "model"
    assert await reply.voice is None
    assert vits.received == []


async def test_unreachable_vits_server_leaves_the_text_alone(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits
) -> None:
    llm.default = Script(text="わっちはここじゃ。")
    app = await voiced_app(make_settings, app_factory, llm, vits)
    vits.stop()
    reply = await app.chain.handle(dm("在吗"))
    assert reply.text == "わっちはここじゃ。"
    assert await reply.voice is None


async def test_channel_switch_overrides_the_default(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, vits: FakeVits
) -> None:
    llm.default = Script(text="はい。")
    app = await voiced_app(make_settings, app_factory, llm, vits, enabled=False)
    assert (await app.chain.handle(dm("一", user="a"))).voice is None
    await app.conversations.update(dm("", user="a").conversation, voice=True)
    assert await (await app.chain.handle(dm("二", user="a"))).voice is not None
    await app.conversations.update(dm("", user="a").conversation, voice=False)
    assert (await app.chain.handle(dm("三", user="a"))).voice is None
