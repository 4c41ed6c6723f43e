"""QQ voice messages (record segments) through the plugin: transcribed, answered, or "couldn't hear"."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nonebot
import pytest
from nonebot.adapters.onebot.v11 import Adapter, Bot, Message, MessageSegment
from nonebug import App as NoneBugApp

from memory.turns import SessionKey
from persona.lines import NOT_HEARD, pick
from tests.qq.conftest import SELF_ID, group_event, private_event
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.stt_server import FakeTranscriber
from tests.voice.test_hearing import silk


def _bot(ctx: Any) -> Bot:
    return ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=SELF_ID)


@pytest.fixture
def stt() -> Iterator[FakeTranscriber]:
    with FakeTranscriber(text="明天去集市吗") as server:
        yield server


def spoken(data: bytes | str, message_id: int) -> Any:
    """A private voice message: the audio inline (base64://), or a file reference as the OneBot side gives it."""
    event = private_event("", message_id=message_id)
    file = data if isinstance(data, str) else "base64://" + base64.b64encode(data).decode()
    voice = Message(MessageSegment.record(file))
    return event.model_copy(update={"message": voice, "original_message": voice, "raw_message": str(voice)})


async def test_a_silk_voice_message_is_heard_and_answered(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI, stt: FakeTranscriber
) -> None:
    qq = await qq_app(voice={"stt_url": stt.url})
    llm.push(Script(text="去，咱正想买苹果。"))
    event = spoken(silk(1.0), 901)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text("去，咱正想买苹果。")), result={"message_id": 1})
    assert stt.uploads[-1].filename.endswith(".wav")  # SILK was converted before upload
    asked = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert "明天去集市吗" in asked
    turns = await qq.store.recent(SessionKey("horo", "qq", "dm", "20001"), 10)
    assert turns[0].text == "（语音）明天去集市吗"  # marked as spoken in the history


async def test_an_amr_voice_message_gets_an_in_character_couldnt_hear(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI, stt: FakeTranscriber
) -> None:
    await qq_app(voice={"stt_url": stt.url})
    event = spoken(b"#!AMR\n" + bytes(200), 902)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text(pick(NOT_HEARD["zh"], "20001:902"))), result={"message_id": 2})
    assert llm.requests == [] and stt.uploads == []


async def test_without_a_transcription_server_the_character_says_so(app: NoneBugApp, qq_app: Any, llm: FakeOpenAI) -> None:
    await qq_app()
    event = spoken(silk(0.5), 903)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
        ctx.should_call_send(event, Message(MessageSegment.text(pick(NOT_HEARD["zh"], "20001:903"))), result={"message_id": 3})
    assert llm.requests == []


async def test_an_unaddressed_voice_message_in_a_group_is_not_transcribed(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI, stt: FakeTranscriber
) -> None:
    await qq_app(voice={"stt_url": stt.url})
    voice = Message(MessageSegment.record("base64://" + base64.b64encode(silk(0.5)).decode()))
    event = group_event(voice, message_id=904)
    async with app.test_matcher() as ctx:
        ctx.receive_event(_bot(ctx), event)
    assert stt.uploads == [] and llm.requests == []


async def test_a_record_naming_a_local_file_is_read_only_from_a_listed_folder(
    app: NoneBugApp, qq_app: Any, llm: FakeOpenAI, stt: FakeTranscriber, tmp_path: Path
) -> None:
    media, private = tmp_path / "napcat", tmp_path / "private"
    media.mkdir()
    private.mkdir()
    (media / "voice.silk").write_bytes(silk(0.5))
    (private / "call.silk").write_bytes(silk(0.5))  # audio: a transcription server would take it
    await qq_app(voice={"stt_url": stt.url}, fetch={"allow_dirs": [str(media)]})
    llm.push(Script(text="去。"))
    refs = ("file:///etc/passwd", f"file://{private}/call.silk", f"{media}/../private/call.silk")
    forged = [spoken(ref, 905 + i) for i, ref in enumerate(refs)]
    listed = spoken(f"file://{media}/voice.silk", 908)
    async with app.test_matcher() as ctx:
        bot = _bot(ctx)
        for i, event in enumerate(forged):
            ctx.receive_event(bot, event)
            ctx.should_call_send(event, Message(MessageSegment.text(pick(NOT_HEARD["zh"], f"20001:{905 + i}"))),
                                 result={"message_id": 5 + i})
        ctx.receive_event(bot, listed)
        ctx.should_call_send(listed, Message(MessageSegment.text("去。")), result={"message_id": 8})
    assert len(stt.uploads) == 1 and stt.uploads[0].filename == "voice.wav"  # only the listed folder's clip
