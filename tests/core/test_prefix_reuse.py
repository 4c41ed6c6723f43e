"""Consecutive prompts of a conversation extend each other, so the server's prefix cache reuses them."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

from bench.load import prefix_reuse, prompt_text
from bot.app import App
from bot.pipeline.exchange import ChannelSettings, Exchange
from bot.pipeline.stages.compose import Compose
from core.knowledge import Passage
from core.llm import ChatMessage
from core.messages import Incoming
from memory.turns import SessionKey, Turn
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI

KEY = SessionKey("horo", "test", "dm", "u1")
Prompt = tuple[ChatMessage, ...]


def passage(i: int, size: int = 60) -> Passage:
    """A distinct source passage of about `size` CJK characters."""
    return Passage(f"〔第{i}回〕" + "麦田里的狼神在仓中沉睡" * (size // 10), f"第{i}回", "source")


async def compose_of(app_factory: Any, make_settings: MakeSettings, llm: FakeOpenAI, context: int) -> tuple[App, Compose]:
    app: App = await app_factory(make_settings(
        llm={"base_url": llm.base_url, "model": "test-model", "context_tokens": context, "max_tokens": 256},
        memory={"summary": False, "facts": False}))
    return app, next(s for s in app.chain.stages if isinstance(s, Compose))


async def converse(app: App, compose: Compose, turns: int, passages: Callable[[int], tuple[Passage, ...]]) -> list[Prompt]:
    """`turns` messages answered one after another, each stored as finish stores it; the prompts."""
    persona = app.personas.get("horo")
    history: list[Turn] = []
    prompts = []
    for i in range(turns):
        text = f"第{i}个问题：说说那年的收成"
        msg = Incoming("test", "u1", "u1", "Alice", text, message_id=f"m{i}", is_direct=True)
        ex = Exchange(msg, persona, KEY, ChannelSettings(), text, history=tuple(history), passages=passages(i))
        prompts.append((await compose(ex)).prompt)
        seq = 2 * i + 1
        history += [Turn("user", text, "u1", "Alice", message_id=f"m{i}", seq=seq),
                    Turn("assistant", f"第{i}句回答。", "", "赫萝", seq=seq + 1)]
    return prompts


def extends(before: Prompt, after: Prompt) -> bool:
    """`after` starts with all of `before` but its last message (the reminder)."""
    return list(after[: len(before) - 1]) == list(before[:-1])


def shown(prompt: Prompt) -> str:
    return "\n".join(m.content for m in prompt)


async def test_each_prompt_extends_the_last_and_keeps_what_earlier_turns_were_given(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, compose = await compose_of(app_factory, make_settings, llm, 8192)
    prompts = await converse(app, compose, 6, lambda i: (passage(i),))
    assert all(extends(a, b) for a, b in pairwise(prompts))
    last = shown(prompts[-1])
    assert all(last.count(passage(i).text) == 1 for i in range(6))  # each shown once, before its turn
    contents = [m.content for m in prompts[-1]]
    note = next(i for i, c in enumerate(contents) if passage(2).text in c)
    assert contents[note + 1] == "第2个问题：说说那年的收成" and prompts[-1][note].role == "system"
    bodies = [{"messages": [{"role": m.role, "content": m.content + " [g1 #0]" * (m.role == "user")} for m in p]}
              for p in prompts]
    assert prefix_reuse(bodies) > 0.8


async def test_a_passage_already_in_view_is_not_shown_again(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, compose = await compose_of(app_factory, make_settings, llm, 8192)
    prompts = await converse(app, compose, 3, lambda i: (passage(0), passage(i + 10)))
    last = shown(prompts[-1])
    assert last.count(passage(0).text) == 1  # sticky: still in view from the first turn, where /why finds it
    assert all(passage(i + 10).text in last for i in range(3))
    assert all(extends(a, b) for a, b in pairwise(prompts))


async def test_earlier_notes_go_at_once_when_the_room_runs_out_then_the_prompt_grows_again(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, compose = await compose_of(app_factory, make_settings, llm, 4096)
    prompts = await converse(app, compose, 12, lambda i: (passage(i, 400),))
    breaks = [i for i, (a, b) in enumerate(pairwise(prompts), 1) if not extends(a, b)]
    assert breaks and len(breaks) <= len(prompts) // 2  # large steps, not a change every turn
    for i in breaks:
        notes = [m for m in prompts[i] if passage(i, 400).text[:20] in m.content or "〔第" in m.content]
        assert len(notes) == 1  # only this message's note; every turn's words stay
        assert all(f"第{j}句回答。" in shown(prompts[i]) for j in range(i))
    profile = compose.profile
    assert all(sum(profile.count_message(m.content) for m in p) <= compose.room() for p in prompts)
    for i in range(12):  # every message saw its own passage
        assert passage(i, 400).text in shown(prompts[i])


async def test_a_recomposed_prompt_does_not_leave_a_stale_note(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, compose = await compose_of(app_factory, make_settings, llm, 8192)
    persona = app.personas.get("horo")
    msg = Incoming("test", "u1", "u1", "Alice", "你好", message_id="m0", is_direct=True)
    ex = Exchange(msg, persona, KEY, ChannelSettings(), "你好", passages=(passage(1),))
    await compose(ex)
    await compose(ex)  # a context overflow recomposes the same message
    stored = (Turn("user", "你好", "u1", "Alice", message_id="m0", seq=1), Turn("assistant", "嗯。", seq=2))
    nxt = Incoming("test", "u1", "u1", "Alice", "再说说", message_id="m1", is_direct=True)
    prompt = (await compose(Exchange(nxt, persona, KEY, ChannelSettings(), "再说说", history=stored))).prompt
    assert shown(prompt).count(passage(1).text) == 1


def test_the_bench_compares_prompts_as_the_template_renders_them() -> None:
    def body(*messages: tuple[str, str]) -> dict[str, Any]:
        return {"messages": [{"role": r, "content": c} for r, c in messages]}

    first = body(("system", "甲" * 50), ("user", "乙 [g1 #0]"))
    assert prompt_text(first).endswith("乙 [g1 #0]<|im_end|>\n<|im_start|>assistant\n")
    assert prefix_reuse([first, first]) == 1.0
    # a message that grew keeps its old end marker only in the old prompt: reuse stops inside it
    grown = body(("system", "甲" * 50), ("user", "乙 [g1 #0]" + "丙" * 50))
    assert 0.4 < prefix_reuse([first, grown]) < 0.6
    # the same text under another role is not the same prompt
    moved = body(("system", "甲" * 50), ("system", "乙"), ("user", "[g1 #1]"))
    assert prefix_reuse([first, moved]) < 0.9
