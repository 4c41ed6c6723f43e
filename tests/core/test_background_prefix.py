"""Summaries and facts are asked after the reply's own prompt, so a single-slot server keeps the reply's prefix.

A real App against the local OpenAI-compatible server: the background request opens with exactly the
messages the conversation's next prompt opens with (the reply's prompt less its closing reminder,
then the reply), and its task comes last; off, or past the server's context, the task goes alone.
"""

from __future__ import annotations

from typing import Any

from bot.app import App
from core.messages import Incoming
from memory.summarizer import FACTS_PROMPT, SUMMARY_PROMPT
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import is_background, replies, task_of

REPLY = "好呀，咱记下了。汝接着说吧。"


def dm(text: str) -> Incoming:
    return Incoming("test", "dm-u1", "u1", "Alice", text, is_direct=True)


async def chat(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, turns: int = 2,
               llm_extra: dict[str, Any] | None = None, **memory: Any) -> list[dict[str, Any]]:
    llm_extra = llm_extra or {}
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model", **llm_extra},
                             memory={"backend": "sqlite", "facts_every": 1, "history_tokens": 200, **memory})
    app: App = await app_factory(settings)

    def respond(body: dict[str, Any]) -> Script:
        if not is_background(body):
            return Script(text=REPLY)
        return Script(text="[]" if task_of(body)[0]["content"] == FACTS_PROMPT["zh"] else "阿青住在杭州。")

    llm.responder = respond
    for i in range(turns):
        await app.chain.handle(dm(f"第{i}句：我叫阿青，住在杭州。"))
        await app.background.drain()
    return llm.requests


async def test_background_work_follows_the_replys_prompt_and_the_next_reply_starts_the_same(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    requests = await chat(make_settings, app_factory, llm, turns=9)
    checked = set()
    for body in (b for b in requests if is_background(b)):
        reply = replies(requests[: requests.index(body)])[-1]["messages"]
        after = (replies(requests[requests.index(body) :]) or [{"messages": []}])[0]["messages"]
        prefix = body["messages"][:-2]
        assert prefix[:-1] == reply[:-1] and reply[-1]["role"] == "system"  # the reply's prompt, less its reminder
        assert prefix[-1] == {"role": "assistant", "content": REPLY}
        task, data = task_of(body)
        assert task["role"] == "system" and data["role"] == "user" and "阿青" not in task["content"]
        if after[1:2] == prefix[1:2]:  # the window did not start again in between (it moves in large steps)
            assert after[: len(prefix)] == prefix  # what the server has cached is where the next prompt starts
            checked.add(task["content"][:12])
    assert checked == {FACTS_PROMPT["zh"][:12], SUMMARY_PROMPT["zh"][:12]}  # both kinds


async def test_off_or_too_long_the_task_goes_alone(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    requests = await chat(make_settings, app_factory, llm, background_after_reply=False)
    background = [b for b in requests if is_background(b)]
    assert background and all(len(b["messages"]) == 2 for b in background)
    llm.requests.clear()
    requests = await chat(make_settings, app_factory, llm, llm_extra={"context_tokens": 700, "max_tokens": 120})
    background = [b for b in requests if is_background(b)]
    assert background and all(len(b["messages"]) == 2 for b in background)  # prefix + task would not fit


async def test_a_reply_no_background_work_follows_is_read_into_llamacpps_cache(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    """llama.cpp: with nothing else to ask, a one-token request reads the next prompt's beginning while the slot is idle."""
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model", "server": "llamacpp"},
                             memory={"backend": "sqlite", "summary": False, "facts": False})
    app: App = await app_factory(settings)
    llm.default = Script(text=REPLY)
    for text in ("我叫阿青。", "你好呀。"):
        await app.chain.handle(dm(text))
        await app.background.drain()
    first, warm, second, _ = llm.requests
    assert warm["max_tokens"] == 1 and warm["messages"][-1] == {"role": "assistant", "content": REPLY}
    assert warm["messages"][:-1] == first["messages"][:-1]  # the reply's prompt less its reminder, then the reply
    assert second["messages"][: len(warm["messages"])] == warm["messages"]
    llm.requests.clear()
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"},  # a server with slots of its own
                             memory={"backend": "sqlite", "summary": False, "facts": False})
    app = await app_factory(settings)
    await app.chain.handle(dm("你好呀。"))
    await app.background.drain()
    assert len(llm.requests) == 1
