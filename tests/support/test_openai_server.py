"""Tests for the fake OpenAI-compatible server used by LLM-client tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.openai_server import FakeOpenAI, Script

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def srv() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def client(srv: FakeOpenAI, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0, timeout=5.0)


def sse_events(srv: FakeOpenAI, body: dict[str, Any]) -> list[str]:
    with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=5.0) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked"
        return [line[len("data: ") :] for line in r.iter_lines() if line]


def test_models_listing(srv: FakeOpenAI) -> None:
    r = httpx.get(f"{srv.base_url}/models")
    assert r.json() == {
        "object": "list",
        "data": [{"id": "test-model", "object": "model", "created": 0, "owned_by": "test"}],
    }
    srv.models = ["a", "b"]
    assert [m.id for m in client(srv).models.list()] == ["a", "b"]


def test_unknown_route_404(srv: FakeOpenAI) -> None:
    assert httpx.get(f"{srv.base_url}/nope").status_code == 404
    assert httpx.post(f"{srv.base_url}/completions", json={}).status_code == 404


def test_non_stream_reply_and_recording(srv: FakeOpenAI) -> None:
    srv.push(Script(text="你好，旅人。"), Script(text="second", finish_reason="length"))
    c = client(srv)
    r1 = c.chat.completions.create(model="test-model", messages=MESSAGES, temperature=0.5)
    r2 = c.chat.completions.create(model="test-model", messages=MESSAGES)
    r3 = c.chat.completions.create(model="test-model", messages=MESSAGES)
    assert r1.choices[0].message.content == "你好，旅人。"
    assert r1.choices[0].message.role == "assistant"
    assert r1.choices[0].finish_reason == "stop"
    assert r1.usage is not None and r1.usage.completion_tokens == 6
    assert (r2.choices[0].message.content, r2.choices[0].finish_reason) == (
        "second",
        "length",
    )
    assert r3.choices[0].message.content == srv.default.text
    assert srv.requests[0]["messages"] == MESSAGES and srv.requests[0]["temperature"] == 0.5
    assert srv.headers[0]["authorization"] == "Bearer sk-test"
    assert len(srv.wait_for_requests(3, timeout=0.1)) == 3
    srv.clear()
    assert srv.requests == [] and srv.headers == []
    with pytest.raises(TimeoutError):
        srv.wait_for_requests(1, timeout=0.05)


def test_responder_and_default(srv: FakeOpenAI) -> None:
    srv.default = Script(text="默认回复")
    srv.push(Script(text="queued"))
    srv.responder = lambda body: Script(text="echo") if body["messages"][-1]["content"] == "echo" else None
    c = client(srv)
    texts = [
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": t}]).choices[0].message.content
        for t in ("echo", "x", "y")
    ]
    assert texts == ["echo", "queued", "默认回复"]


def test_stream_reply(srv: FakeOpenAI) -> None:
    text = "你好，旅人。Welcome!"
    srv.push(Script(text=text, chunk_size=3))
    events = sse_events(srv, {"model": "m", "messages": MESSAGES, "stream": True})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    assert len(chunks) == 1 + -(-len(text) // 3)


def test_stream_with_openai_sdk_and_usage(srv: FakeOpenAI) -> None:
    srv.push(Script(text="abcdefghij"))
    stream = client(srv).chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "abcdefghij"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        2,
        10,
    )


def test_error_status(srv: FakeOpenAI) -> None:
    srv.push(Script(status=500, error="boom"), Script(status=400, error="bad"))
    with pytest.raises(openai.InternalServerError) as exc:
        client(srv).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.status_code == 500 and "boom" in str(exc.value)
    r = httpx.post(
        f"{srv.base_url}/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
    )
    assert r.status_code == 400
    assert r.json() == {"error": {"message": "bad", "type": "invalid_request_error", "code": 400}}


def test_api_key_required(srv: FakeOpenAI) -> None:
    srv.api_key = "sk-test"
    with pytest.raises(openai.AuthenticationError):
        client(srv, key="sk-wrong").chat.completions.create(model="m", messages=MESSAGES)
    r = httpx.get(f"{srv.base_url}/models")
    assert r.status_code == 401 and "message" in r.json()["error"]
    reply = client(srv).chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == srv.default.text


def test_delay_and_concurrency(srv: FakeOpenAI) -> None:
    srv.push(Script(text="a", delay=0.5), Script(text="b", delay=0.5))
    results: list[str] = []

    def call() -> None:
        r = client(srv).chat.completions.create(model="m", messages=MESSAGES)
        results.append(r.choices[0].message.content or "")

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    srv.wait_for_requests(2)
    assert srv.in_flight == 2
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert sorted(results) == ["a", "b"]
    assert srv.max_in_flight == 2 and srv.in_flight == 0
    assert 0.5 <= elapsed < 0.95


def test_chunk_delay(srv: FakeOpenAI) -> None:
    srv.push(Script(text="abc", chunk_size=1, chunk_delay=0.1))
    started = time.monotonic()
    events = sse_events(srv, {"model": "m", "messages": MESSAGES, "stream": True})
    assert len(events) == 5 and time.monotonic() - started >= 0.4


def test_fail_after_chunks_breaks_stream(srv: FakeOpenAI) -> None:
    srv.push(Script(text="partial reply here", fail_after_chunks=2))
    got: list[str] = []
    stream = client(srv).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "partial "
    srv.push(Script(text="x", fail_after_chunks=0))
    with pytest.raises(openai.APIConnectionError):
        client(srv).chat.completions.create(model="m", messages=MESSAGES)


def test_stop_is_fast_with_slow_request_in_progress() -> None:
    srv = FakeOpenAI().start()
    srv.push(Script(text="never", delay=30.0))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client(srv).chat.completions.create(model="m", messages=MESSAGES)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=call)
    t.start()
    srv.wait_for_requests(1)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.0
    t.join(timeout=2.0)
    assert not t.is_alive() and isinstance(errors[0], openai.APIConnectionError)

