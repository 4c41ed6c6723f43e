"""The model client against a real local HTTP server: fields per server kind, overflow, faults, timeouts."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bot.app import App
from core.messages import Incoming
from memory.turns import SessionKey
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder
from tests.support.requests import is_background, replies

OVERFLOW = ("This model's maximum context length is 2048 tokens. However, you requested 3000 tokens "
            "(2990 in the messages, 10 in the completion). Please reduce the length of the messages or completion.")


def dm(text: str, uid: str = "u1") -> Incoming:
    """A direct message."""
    return Incoming("test", "dm-" + uid, uid, "Alice", text, is_direct=True)


def cfg(srv: FakeOpenAI, **kw: Any) -> dict[str, Any]:
    """[llm] for the test server."""
    return {"base_url": srv.base_url, "model": "test-model", **kw}


@pytest.mark.parametrize(
    ("owned_by", "cap_field", "absent", "penalty"),
    [
        ("me", "max_tokens", "max_completion_tokens", "repeat_penalty"),  # llama-cpp-python
        ("llamacpp", "max_tokens", "max_completion_tokens", "repeat_penalty"),
        ("lmdeploy", "max_tokens", "max_completion_tokens", "repetition_penalty"),
        ("vllm", "max_tokens", "max_completion_tokens", "repetition_penalty"),
        ("openai", "max_completion_tokens", "max_tokens", None),
    ],
)
async def test_each_server_kind_gets_the_fields_it_reads(
    owned_by: str, cap_field: str, absent: str, penalty: str | None,
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI,
) -> None:
    llm.owned_by = owned_by
    app: App = await app_factory(make_settings(llm=cfg(llm, max_tokens=77), memory={"facts": False}))
    llm.push(Script(text="嗯。"))
    await app.chain.handle(dm("你好"))
    body = replies(llm.requests)[-1]
    assert body[cap_field] == 77 and absent not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    if penalty is None:  # a cloud API gets nothing beyond OpenAI's own fields
        assert not {"top_k", "repeat_penalty", "repetition_penalty"} & set(body)
    else:
        assert body[penalty] == 1.05 and body["top_k"] == 40
        assert not ({"repeat_penalty", "repetition_penalty"} - {penalty}) & set(body)


async def test_context_size_is_read_from_the_server(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    llm.owned_by, llm.card = "vllm", {"max_model_len": 3000}
    app: App = await app_factory(make_settings(llm=cfg(llm)))
    await app.chain.handle(dm("你好"))
    profile = app.model.profile  # type: ignore[union-attr]
    assert (profile.context, profile.context_source, profile.kind) == (3000, "server", "vllm")


async def test_every_background_request_is_capped(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    settings = make_settings(llm=cfg(llm), memory={"facts_every": 1, "history_tokens": 100, "summary_tokens": 80})
    app: App = await app_factory(settings)
    llm.responder = lambda body: Script(text="[]") if is_background(body) else Script(text="好。")
    for i in range(4):
        await app.chain.handle(dm(f"第{i}句，我今天去了集市，买了好多苹果和一壶酒。"))
        await app.background.drain()
    background = [b for b in llm.requests if is_background(b)]
    assert background and all(0 < b["max_tokens"] <= 160 for b in background)


async def test_an_overflow_is_shrunk_and_retried_once_without_tripping_the_breaker(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    app: App = await app_factory(make_settings(llm=cfg(llm, retry_after=60), memory={"facts": False}))
    llm.push(Script(status=400, error=OVERFLOW, code="context_length_exceeded"), Script(text="好。"))
    caplog.set_level(logging.WARNING)
    reply = await app.chain.handle(dm("你好" * 300))
    assert reply is not None and reply.mode == "model"
    profile = app.model.profile  # type: ignore[union-attr]
    assert profile.context == 2048
    sent = [sum(profile.count_message(m["content"]) for m in b["messages"]) for b in replies(llm.requests)]
    assert len(sent) == 2 and sent[1] < sent[0] and sent[1] + min(512, 2048 // 3) <= 2048
    assert any("prompt too long for the server (2990 > 2048 tokens)" in r.getMessage() for r in caplog.records)
    llm.push(Script(text="还在。"))
    again = await app.chain.handle(dm("还在吗"))
    assert again is not None and again.mode == "model"  # the breaker stayed closed


async def test_an_empty_stream_is_diagnosed_as_an_overflow(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app: App = await app_factory(make_settings(llm=cfg(llm), memory={"facts": False}))
    llm.push(Script(empty_stream=True), Script(status=400, error=OVERFLOW, code="context_length_exceeded"),
             Script(text="好。"))
    reply = await app.chain.handle(dm("你好"))
    assert reply is not None and reply.mode == "model" and reply.text == "好。"
    diagnosis = llm.requests[1]
    assert diagnosis["stream"] is False and diagnosis["max_tokens"] == 1


async def test_a_request_error_does_not_open_the_breaker(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app: App = await app_factory(make_settings(llm=cfg(llm, retry_after=60), memory={"facts": False}))
    llm.push(Script(status=400, error="unknown field 'top_k'"))
    first = await app.chain.handle(dm("你好"))
    llm.push(Script(text="好。"))
    second = await app.chain.handle(dm("你好呀"))
    assert first is not None and first.mode == "fallback"
    assert second is not None and second.mode == "model"


@pytest.mark.parametrize("script", [Script(status=503, error="overloaded"), Script(text="[fak", garbled=True)])
async def test_server_faults_fall_back_and_open_the_breaker(
    script: Script, make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app: App = await app_factory(make_settings(llm=cfg(llm, retry_after=60), memory={"facts": False}))
    llm.push(script)
    first = await app.chain.handle(dm("你好"))
    second = await app.chain.handle(dm("你好呀"))
    assert first is not None and first.mode == "fallback" and "[fak" not in first.text
    assert second is not None and second.mode == "fallback"
    assert len(replies(llm.requests)) == 1  # the open breaker kept the second one off the server
    stored = await app.store.recent(SessionKey("horo", "test", "dm", "u1"), 10)
    assert "[fak" not in " ".join(t.text for t in stored)


async def test_a_hung_server_is_answered_within_the_first_token_timeout(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    settings = make_settings(llm=cfg(llm, first_token_timeout=1.0, max_concurrency=4), memory={"facts": False},
                             bot={"rate_limit_per_minute": 1000})
    app: App = await app_factory(settings)
    llm.default = Script(text="迟到了。", delay=30)
    loop = asyncio.get_running_loop()

    async def timed(i: int) -> tuple[float, str]:
        start = loop.time()
        reply = await app.chain.handle(dm("在吗", uid=f"u{i}"))
        assert reply is not None
        return loop.time() - start, reply.mode

    results = await asyncio.gather(*(timed(i) for i in range(20)))
    assert all(mode == "fallback" for _, mode in results)
    assert max(t for t, _ in results) <= 1.0 + 1.0, results


async def test_a_started_stream_runs_past_the_first_token_timeout(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app: App = await app_factory(make_settings(llm=cfg(llm, first_token_timeout=0.5), memory={"facts": False}))
    llm.push(Script(text="咱慢慢说。汝慢慢听。", chunk_size=2, chunk_delay=0.2))
    start = time.monotonic()
    reply = await app.chain.handle(dm("慢慢讲"))
    assert reply is not None and reply.mode == "model" and reply.text == "咱慢慢说。汝慢慢听。"
    assert time.monotonic() - start > 0.5


async def test_background_work_finishes_at_exit(make_settings: MakeSettings, llm: FakeOpenAI) -> None:
    settings = make_settings(llm=cfg(llm), memory={"facts_every": 1, "summary": False})
    llm.responder = lambda body: Script(text='["养了一只叫团子的猫"]', delay=1.0) if is_background(body) else None
    llm.default = Script(text="好。")
    async with App.open(settings) as app:
        await app.chain.handle(dm("我养了一只猫，叫团子"))
    async with App.open(settings) as again:
        assert await again.store.facts("horo", "test", "u1") == ["养了一只叫团子的猫"]


async def test_a_message_that_cannot_be_handled_is_answered_and_named(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    app: App = await app_factory(make_settings(llm=cfg(llm), memory={"facts": False}))

    async def broken(ex: Any) -> Any:
        raise RuntimeError("disk on fire")

    app.chain.stages.insert(2, broken)
    caplog.set_level(logging.WARNING)
    sent: list[str] = []

    async def send(reply: Any) -> None:
        sent.append(reply.text)

    reply = await app.chain.handle(Incoming("test", "dm-u1", "u1", "Alice", "你好", message_id="m1", is_direct=True),
                                   Recorder(send))
    assert reply is not None and reply.mode == "fallback" and sent == [reply.text]
    assert "稍等" in reply.text  # Horo's own "give me a moment" line
    assert any("message m1 in test:dm:u1 could not be handled (RuntimeError: disk on fire)" in r.getMessage()
               for r in caplog.records)
