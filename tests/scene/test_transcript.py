"""One transcript, several views: every character keeps the scene's lines with their speakers, in the
real Redis and SQLite stores, and each prompt shows the others' lines as named speakers."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import App
from bot.scene.runner import Scenes
from core.conversation import Conversation
from core.messages import Incoming, Reply
from core.outlet import ClipTask
from memory.scene import line_of, record, said_by
from memory.turns import SessionKey, Turn
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Chime, Recorder

WHERE = Conversation("test", "group", "g1")


@pytest.fixture(params=["sqlite", "redis"])
def memory(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str) -> dict[str, Any]:
    """The [memory] section of each real backend."""
    if request.param == "redis":
        return {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix}
    return {"backend": "sqlite"}


def by_persona(body: dict[str, Any]) -> str:
    """Which character a request is for: its system prompt names it."""
    system = body["messages"][0]["content"]
    return "horo" if "约伊兹" in system else "yexiu"


async def open_scene(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any],
                     tts: Any = None, **scene: Any) -> tuple[App, Scenes]:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
                             memory={"summary": False, "facts": False, **memory}, scene=scene,
                             voice={"enabled": tts is not None})
    app: App = await app_factory(settings, voice=tts)
    return app, Scenes(settings.scene, settings.bot, app.chain, app.personas, app.clocks.wall, app.clocks.mono)


def said(text: str, mid: str = "m1", **kw: Any) -> Incoming:
    return Incoming("test", "g1", "u1", "阿青", text, message_id=mid, **kw)


async def test_lines_keep_their_speaker_in_each_characters_memory(make_settings: MakeSettings, app_factory: Any,
                                                                  llm: FakeOpenAI, memory: dict[str, Any]) -> None:
    app, _ = await open_scene(make_settings, app_factory, llm, memory)
    hello = Turn("user", "大家好", "u1", "阿青", at=1.0, message_id="m1")
    await record(app.store, WHERE, {"horo": hello, "yexiu": hello})
    await app.store.append(SessionKey.of("horo", WHERE), [Turn("assistant", "呵呵。", name="赫萝", at=2.0)])
    await record(app.store, WHERE, {"yexiu": line_of("horo", "赫萝", "呵呵。", 2.0)})
    horo = await app.store.recent(SessionKey.of("horo", WHERE), 10)
    yexiu = await app.store.recent(SessionKey.of("yexiu", WHERE), 10)
    assert [(t.text, said_by(t, "horo")) for t in horo] == [("大家好", "person"), ("呵呵。", "self")]
    assert [(t.text, t.name, said_by(t, "yexiu")) for t in yexiu] == [("大家好", "阿青", "person"),
                                                                       ("呵呵。", "赫萝", "character")]
    assert yexiu[1].role == "user" and yexiu[1].speaker == "horo" and yexiu[1].user_id == "scene:horo"
    assert Turn.loads(Turn("user", "x").dumps()).speaker == "" and '"speaker"' not in Turn("user", "x").dumps()


async def test_a_message_naming_both_gets_one_reply_from_each_and_the_second_sees_the_first(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any]
) -> None:
    app, scenes = await open_scene(make_settings, app_factory, llm, memory)
    llm.responder = lambda body: Script(text={"horo": "咱先说：苹果最好。", "yexiu": "我没意见，打游戏去了。"}[by_persona(body)])
    sent: list[tuple[str, str]] = []

    def outlet(pid: str) -> Recorder:
        async def send(reply: Reply) -> None:
            sent.append((pid, reply.text))
        return Recorder(send)

    outlets = {pid: outlet(pid) for pid in ("horo", "yexiu")}
    replies = await scenes.handle(said("赫萝和叶修，你们觉得呢？"), ["horo", "yexiu"], outlets)
    assert [(r.persona_id, r.text) for r in replies] == [("horo", "咱先说：苹果最好。"), ("yexiu", "我没意见，打游戏去了。")]
    # each line out through its own character's outlet, in turn
    assert sent == [("horo", "咱先说：苹果最好。"), ("yexiu", "我没意见，打游戏去了。")]
    assert [r.persona_id for r in outlets["horo"].sent] == ["horo"] and outlets["horo"].kinds == ["placed", "partial*", "send"]
    first, second = llm.requests[-2]["messages"], llm.requests[-1]["messages"]
    assert by_persona(llm.requests[-2]) == "horo" and by_persona(llm.requests[-1]) == "yexiu"
    # the later speaker sees the earlier one's line as a named speaker, never as its own reply
    assert any(m["role"] == "user" and "赫萝: 咱先说：苹果最好。" in m["content"] for m in second)
    assert not any(m["role"] == "assistant" and "苹果" in m["content"] for m in second)
    assert any("阿青: 赫萝和叶修，你们觉得呢？" in m["content"] for m in second)
    # and never another character's card
    horo_card = app.personas.get("horo").card
    assert horo_card.personality[:20] not in "".join(m["content"] for m in second)
    assert "约伊兹" not in second[0]["content"] and "约伊兹" in first[0]["content"]
    horo = await app.store.recent(SessionKey.of("horo", WHERE), 10)
    yexiu = await app.store.recent(SessionKey.of("yexiu", WHERE), 10)
    assert [(t.role, t.speaker, t.text) for t in horo] == [
        ("user", "", "赫萝和叶修，你们觉得呢？"), ("assistant", "", "咱先说：苹果最好。"), ("user", "yexiu", "我没意见，打游戏去了。")]
    assert [(t.role, t.speaker, t.text) for t in yexiu] == [
        ("user", "", "赫萝和叶修，你们觉得呢？"), ("user", "horo", "咱先说：苹果最好。"), ("assistant", "", "我没意见，打游戏去了。")]
    assert yexiu[0].addressed  # he was named, though the first line went to her


async def test_an_at_reaches_its_character_alone_and_a_plain_message_is_kept_by_all(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any]
) -> None:
    app, scenes = await open_scene(make_settings, app_factory, llm, memory)
    llm.default = Script(text="嗯，说得好。")
    replies = await scenes.handle(said("叶修你看这个", "m1"), ["horo", "yexiu"], {}, to="horo")
    assert [r.persona_id for r in replies] == ["horo"] and len(llm.requests) == 1
    assert await scenes.handle(said("今天天气不错", "m2"), ["horo", "yexiu"], {}) == []
    assert len(llm.requests) == 1
    for pid in ("horo", "yexiu"):
        turns = await app.store.recent(SessionKey.of(pid, WHERE), 10)
        assert turns[-1].text == "今天天气不错" and not turns[-1].addressed


async def test_characters_answering_each_other_stop_within_max_bot_turns(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any]
) -> None:
    app, scenes = await open_scene(make_settings, app_factory, llm, memory, max_bot_turns=3)
    lines = {"horo": ["叶修，汝怎么看？", "叶修又在偷懒。", "叶修！"], "yexiu": ["赫萝你问我？", "赫萝别闹。"]}
    llm.responder = lambda body: Script(text=lines[by_persona(body)].pop(0))
    replies = await scenes.handle(said("赫萝你好"), ["horo", "yexiu"], {})
    assert [r.persona_id for r in replies] == ["horo", "yexiu", "horo"] and len(llm.requests) == 3
    yexiu = await app.store.recent(SessionKey.of("yexiu", WHERE), 10)
    assert [t.text for t in yexiu][-3:] == ["叶修，汝怎么看？", "赫萝你问我？", "叶修又在偷懒。"]


async def test_each_copy_of_a_message_is_taken_once(make_settings: MakeSettings, app_factory: Any,
                                                     llm: FakeOpenAI) -> None:
    _, scenes = await open_scene(make_settings, app_factory, llm, {"backend": "sqlite"})
    assert scenes.first_copy(said("hi", "77", bot_id="10001"))
    assert not scenes.first_copy(said("hi", "77", bot_id="10002"))
    assert scenes.first_copy(said("hi", "78", bot_id="10002"))


async def test_each_line_goes_out_through_its_characters_outlet_and_the_clips_follow_the_round(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    _, scenes = await open_scene(make_settings, app_factory, llm, {"backend": "sqlite"}, tts=Chime())
    llm.responder = lambda body: Script(text={"horo": "咱先说。", "yexiu": "我后说。"}[by_persona(body)])
    log: list[tuple[str, str]] = []

    class Logged(Recorder):
        def __init__(self, pid: str):
            super().__init__()
            self.pid = pid

        async def send(self, reply: Reply) -> None:
            log.append(("send", self.pid))
            await super().send(reply)

        async def voice(self, clip: ClipTask) -> None:
            await super().voice(clip)
            log.append(("voice", self.pid))

    outlets = {pid: Logged(pid) for pid in ("horo", "yexiu")}
    replies = await scenes.handle(said("赫萝和叶修，谁先说？"), ["horo", "yexiu"], outlets)
    assert [r.persona_id for r in replies] == ["horo", "yexiu"]
    # the second character does not wait for the first one's clip; the clips follow in the order of the lines
    assert log == [("send", "horo"), ("send", "yexiu"), ("voice", "horo"), ("voice", "yexiu")]
    # each in its own voice, as its card says
    clips = [outlets[pid].events[-1][1] for pid in ("horo", "yexiu")]
    assert [(c.text, c.data) for c in clips] == [("咱先说。", b"RIFF-jf_alpha"), ("我后说。", b"RIFF-jm_kumo")]


async def test_three_characters_each_keep_the_round_in_order(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any]
) -> None:
    app, scenes = await open_scene(make_settings, app_factory, llm, memory)

    def who(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        return "wukong" if "俺老孙" in system else by_persona(body)

    llm.responder = lambda body: Script(text={"horo": "咱先来。", "yexiu": "我第二。", "wukong": "俺老孙压轴！"}[who(body)])
    replies = await scenes.handle(said("赫萝、叶修、大圣，排个队？"), ["horo", "yexiu", "wukong"], {})
    assert [r.persona_id for r in replies] == ["horo", "yexiu", "wukong"]
    # the third speaker's prompt holds both lines before it, in order, as named speakers
    third = "\n".join(m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user")
    assert third.index("赫萝: 咱先来。") < third.index("叶修: 我第二。")
    kept = {pid: [(t.role, t.speaker, t.text) for t in await app.store.recent(SessionKey.of(pid, WHERE), 10)]
            for pid in ("horo", "yexiu", "wukong")}
    heard = ("user", "", "赫萝、叶修、大圣，排个队？")
    assert kept["horo"] == [heard, ("assistant", "", "咱先来。"), ("user", "yexiu", "我第二。"), ("user", "wukong", "俺老孙压轴！")]
    assert kept["yexiu"] == [heard, ("user", "horo", "咱先来。"), ("assistant", "", "我第二。"), ("user", "wukong", "俺老孙压轴！")]
    assert kept["wukong"] == [heard, ("user", "horo", "咱先来。"), ("user", "yexiu", "我第二。"), ("assistant", "", "俺老孙压轴！")]
