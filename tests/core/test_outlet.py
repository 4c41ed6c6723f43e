"""The outlet contract (core/outlet.py): what the real chain hands a front, in which order, for each kind of answer."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.app import App
from core.messages import Clip, Incoming
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Chime, Recorder


def dm(text: str, mid: str = "", uid: str = "u1") -> Incoming:
    return Incoming("test", "dm-" + uid, uid, "Alice", text, message_id=mid, is_direct=True)


def at(text: str, mid: str, uid: str = "u1") -> Incoming:
    return Incoming("test", "g1", uid, f"U{uid}", text, message_id=mid, mentions_bot=True)


async def open_app(app_factory: Any, make_settings: MakeSettings, srv: FakeOpenAI, **sections: Any) -> App:
    sections["llm"] = {"base_url": srv.base_url, "model": "test-model", "retry_after": 0, **sections.get("llm", {})}
    sections["memory"] = {"summary": False, "facts": False, **sections.get("memory", {})}
    voice = sections.pop("tts", None)
    return await app_factory(make_settings(**sections), voice=voice)  # type: ignore[no-any-return]


async def test_a_reply_is_placed_streamed_then_sent_whole(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app = await open_app(app_factory, make_settings, llm)
    said = "汝来了。咱等了好一阵，尾巴都晒暖了。今天集市上的苹果很甜，咱给汝留了一个。明天再一起去河边走走吧。"
    llm.push(Script(text=said, chunk_size=3, chunk_delay=0.01))
    out = Recorder()
    reply = await app.chain.handle(dm("你好", "m1"), out)
    assert out.kinds == ["placed", "partial*", "send"]
    assert out.events[0] == ("placed", 0)
    assert len(out.partials) > 1 and "".join(out.partials) == reply.text  # type: ignore[union-attr]
    assert out.sent == [reply] and reply is not None and reply.reply_to == "m1" and reply.mode == "model"


async def test_the_voice_clip_comes_after_the_text(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app = await open_app(app_factory, make_settings, llm, voice={"enabled": True}, tts=Chime())
    llm.push(Script(text="咱在这儿。"))
    out = Recorder()
    reply = await app.chain.handle(dm("在吗", "m1"), out)
    assert out.kinds == ["placed", "partial*", "send", "voice"]
    clip = out.events[-1][1]
    assert isinstance(clip, Clip) and clip.text == "咱在这儿。" and reply is not None and reply.voice is not None


async def test_with_no_model_the_offline_line_goes_the_same_way(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app = await open_app(app_factory, make_settings, llm, llm={"provider": "offline"})
    out = Recorder()
    reply = await app.chain.handle(dm("你好", "m1"), out)
    assert out.kinds == ["placed", "partial*", "send"]
    assert reply is not None and reply.mode == "offline" and "".join(out.partials) == reply.text
    assert llm.requests == []


async def test_over_the_rate_limit_one_notice_then_silence(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app = await open_app(app_factory, make_settings, llm, bot={"rate_limit_per_minute": 1, "merge_bursts": False})
    llm.default = Script(text="嗯。")
    first, second, third = Recorder(), Recorder(), Recorder()
    await app.chain.handle(at("赫萝，在吗", "m1"), first)
    notice = await app.chain.handle(at("赫萝，还在吗", "m2"), second)
    assert await app.chain.handle(at("赫萝？", "m3"), third) is None
    assert first.kinds == ["placed", "partial*", "send"]
    assert second.kinds == ["placed", "partial*", "send"] and notice is not None and notice.mode == "canned"
    assert second.partials == [notice.text] and notice.text in app.personas.get("horo").card.lines.rate_limited
    assert third.kinds == ["placed"]  # silent: only its place was taken


async def test_a_message_that_waits_gets_the_busy_notice_first_then_its_answer(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await open_app(app_factory, make_settings, llm, bot={"busy_notice_seconds": 0.2, "rate_limit_per_minute": 100},
                         llm={"max_concurrency": 1})
    llm.default = Script(text="好，这就来。", delay=0.5)
    ahead, behind = Recorder(), Recorder()
    await asyncio.gather(app.chain.handle(at("赫萝，在吗", "a1", uid="a"), ahead),
                         app.chain.handle(at("赫萝，你好", "b1", uid="b"), behind))
    assert ahead.kinds == ["placed", "partial*", "send"] and ahead.events[0] == ("placed", 0)
    assert behind.kinds == ["placed", "send", "partial*", "send"] and behind.events[0] == ("placed", 1)
    busy, answer = behind.sent
    assert busy.mode == "canned" and busy.reply_to == "b1" and busy.text in app.personas.get("horo").card.lines.busy
    assert answer.mode == "model" and answer.reply_to == "b1"


async def test_a_short_acknowledgement_gets_a_reaction_and_nothing_else(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await open_app(app_factory, make_settings, llm, initiative={"react_chance": 1.0})
    out = Recorder()
    reply = await app.chain.handle(dm("哈哈哈", "m1"), out)
    assert out.events == [("placed", 0), ("react", "😄")]
    assert reply is not None and reply.mode == "reaction" and llm.requests == []


async def test_a_burst_is_answered_once_through_the_first_message_s_outlet(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app = await open_app(app_factory, make_settings, llm)
    llm.default = Script(text="嗯，一并答汝。", delay=0.3)
    busy, first, second = Recorder(), Recorder(), Recorder()
    talking = asyncio.create_task(app.chain.handle(dm("在吗", "m0"), busy))
    await asyncio.to_thread(llm.wait_for_requests, 1)
    got = await asyncio.gather(app.chain.handle(dm("问你个事", "m1"), first), app.chain.handle(dm("你喜欢吃啥", "m2"), second))
    await talking
    assert [e[0] for e in (first.events[0], second.events[0])] == ["placed", "placed"]
    assert (first.events[0][1], second.events[0][1]) == (1, 2)  # behind the one being answered, in order
    assert first.kinds == ["placed", "partial*", "send"] and second.kinds == ["placed"]
    assert got[1] is None and got[0] is not None and first.sent == [got[0]]
