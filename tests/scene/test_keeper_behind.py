"""A round's last memory write goes on after the round: the round does not wait for it, the channel's next
speaker does, and a settle (as the app's stop does) writes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from memory.turns import SessionKey, Turn
from tests.conftest import MakeSettings
from tests.scene.test_transcript import WHERE, by_persona, memory, open_scene, said  # noqa: F401 - the fixture, here too
from tests.support.openai_server import FakeOpenAI, Script


def hold_writes(app: Any, monkeypatch: pytest.MonkeyPatch, *gates: tuple[Callable[[Turn], bool], asyncio.Event]) -> None:
    """The characters' memory writes holding a turn that a gate's test picks wait until that gate opens."""
    append_each = app.chain.turns.append_each

    async def gated(items: Sequence[tuple[SessionKey, Sequence[Turn]]]) -> Any:
        said = [t for _, turns in items for t in turns]
        for picks, gate in gates:
            if any(picks(t) for t in said):
                await gate.wait()
        return await append_each(items)

    monkeypatch.setattr(app.chain.turns, "append_each", gated)


async def test_the_last_line_is_kept_after_the_round_and_before_the_next_speaker_needs_it(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    app, _ = await open_scene(make_settings, app_factory, llm, memory)
    scenes = app.scenes  # as the app wires it: with its background work
    lines = {"horo": ["咱先说：苹果最好。", "汝刚才说得对。"], "yexiu": ["我没意见，打游戏去了。"]}
    llm.responder = lambda body: Script(text=lines[by_persona(body)].pop(0))
    gate = asyncio.Event()
    hold_writes(app, monkeypatch, (lambda t: t.speaker == "yexiu", gate))  # his lines wait at the gate
    cast = ["horo", "yexiu"]

    # yexiu's line closes the round: horo keeps it, and that write is held at the gate
    replies = await asyncio.wait_for(scenes.handle(said("赫萝和叶修，你们觉得呢？", "m1"), cast, {}), 5)  # the round is over without waiting for it
    assert [r.persona_id for r in replies] == ["horo", "yexiu"]
    horo = SessionKey.of("horo", WHERE)
    assert "我没意见，打游戏去了。" not in [t.text for t in await app.store.recent(horo, 10)]

    # the next message @s horo: she speaks only once that line is in her memory
    second = asyncio.ensure_future(scenes.handle(said("赫萝你说呢", "m2"), cast, {}, to="horo"))
    await asyncio.sleep(0.3)
    assert len(llm.requests) == 2 and not second.done()
    gate.set()
    assert [r.text for r in await asyncio.wait_for(second, 5)] == ["汝刚才说得对。"]
    prompt = llm.requests[-1]["messages"]
    assert any(m["role"] == "user" and "叶修: 我没意见，打游戏去了。" in m["content"] for m in prompt)
    await scenes.settle()
    kept = [t.text for t in await app.store.recent(horo, 10)]
    assert kept[-3:] == ["我没意见，打游戏去了。", "赫萝你说呢", "汝刚才说得对。"]


async def test_a_settle_writes_what_a_round_left_on_its_way(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    app, _ = await open_scene(make_settings, app_factory, llm, memory)
    llm.responder = lambda body: Script(text={"horo": "咱在。", "yexiu": "嗯。"}[by_persona(body)])
    gate = asyncio.Event()
    hold_writes(app, monkeypatch, (lambda t: t.speaker == "yexiu", gate))  # his lines wait at the gate
    replies = await asyncio.wait_for(app.scenes.handle(said("赫萝和叶修在吗", "m1"), ["horo", "yexiu"], {}), 5)
    assert [r.persona_id for r in replies] == ["horo", "yexiu"]
    settling = asyncio.ensure_future(app.scenes.settle())
    await asyncio.sleep(0.1)
    assert not settling.done()
    gate.set()
    await asyncio.wait_for(settling, 5)
    horo = [t.text for t in await app.store.recent(SessionKey.of("horo", WHERE), 10)]
    assert horo == ["赫萝和叶修在吗", "咱在。", "嗯。"]  # his line, kept for her after the round


async def test_a_speaker_waits_only_for_the_lines_meant_for_it(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, memory: dict[str, Any], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    app, _ = await open_scene(make_settings, app_factory, llm, memory)
    llm.responder = lambda body: Script(text={"horo": "咱在。", "yexiu": "嗯。"}[by_persona(body)])
    his_line, his_copy = asyncio.Event(), asyncio.Event()
    # his line, kept for her; the copy he keeps of a message to her
    hold_writes(app, monkeypatch, (lambda t: t.speaker == "yexiu", his_line), (lambda t: t.text == "赫萝你说呢", his_copy))
    cast = ["horo", "yexiu"]
    await asyncio.wait_for(app.scenes.handle(said("赫萝和叶修在吗", "m1"), cast, {}), 5)
    # she is @'d next: she waits for his line, not for his copy of the message, written after it
    second = asyncio.ensure_future(app.scenes.handle(said("赫萝你说呢", "m2"), cast, {}, to="horo"))
    await asyncio.sleep(0.2)
    assert not second.done() and len(llm.requests) == 2
    his_line.set()
    assert [r.persona_id for r in await asyncio.wait_for(second, 5)] == ["horo"]
    his_copy.set()
    await asyncio.wait_for(app.scenes.settle(), 5)
    assert [t.text for t in await app.store.recent(SessionKey.of("yexiu", WHERE), 10)][-2:] == ["赫萝你说呢", "咱在。"]
