"""The bot against a real model server: llama.cpp serving SmolLM2-135M-Instruct.

The model's words are noise; these tests check plumbing: caps reach the server, prompts fit its
context as it counts them, streams show, memory survives a restart, background work ends within
its caps, no traceback and no fallback while the model is up.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.checks.hygiene import _SENTENCE_END, ReplyCheck
from core.messages import Incoming
from memory.turns import SessionKey
from tests.conftest import ROOT, MakeSettings
from tests.real_model.llama import LlamaServer
from tests.support.cli import run_bot
from tests.support.outlet import Recorder

Llama = Any  # the `llama` fixture: n_ctx -> LlamaServer


def dm(text: str, uid: str = "u1", name: str = "Alice") -> Incoming:
    """A direct message."""
    return Incoming(platform="test", channel_id=uid, user_id=uid, display_name=name, text=text, is_direct=True)


def llm(server: LlamaServer, **extra: Any) -> dict[str, Any]:
    """[llm] for that server."""
    return {"base_url": server.base_url, "request_timeout": 120.0, "deadline": 120.0,
            "first_token_timeout": 120.0, **extra}


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """No log record carries a traceback, and the server never counted as failed while it was up.

    A reply the tiny model garbles (an echo of the prompt, another speaker's turn) may still end
    in an example line: that is the hygiene working, and it is logged as "unusable".
    """
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    texts = [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if "model failed" in t or "refused the request" in t], texts


def answered(reply: Any, caplog: pytest.LogCaptureFixture) -> bool:
    """The model answered, or its answer was thrown away by the output checks (and logged so)."""
    if reply is None:
        return False
    return reply.mode == "model" or any("unusable" in r.getMessage() for r in caplog.records)


async def test_reply_cap_reaches_the_server(
    llama: Llama, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server: LlamaServer = llama(2048)
    app: App = await app_factory(make_settings(llm=llm(server, max_tokens=24, context_tokens=2048),
                                               memory={"summary": False, "facts": False}))
    mark = server.mark()
    caplog.set_level(logging.INFO)
    reply = await app.chain.handle(dm("Write a very long story about a wolf and a merchant, at least 800 words."))
    assert answered(reply, caplog)
    generated = server.generated(mark)
    assert generated and max(generated) <= 25, generated  # llama.cpp counts the first token apart
    no_tracebacks(caplog)


@pytest.mark.parametrize("persona", ["horo", "yexiu", "wukong"])
async def test_prompts_fit_a_small_context_as_the_server_counts(
    persona: str, llama: Llama, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server: LlamaServer = llama(2048)
    settings = make_settings(llm=llm(server, max_tokens=48), bot={"default_persona": persona},
                             memory={"summary": False, "facts": False})
    app: App = await app_factory(settings)
    caplog.set_level(logging.INFO)
    mark = server.mark()
    for text in ("你好，你是谁？", "你最喜欢什么？", "给我讲讲你的故事吧", "明天我们去哪儿？"):
        reply = await app.chain.handle(dm(text))
        assert answered(reply, caplog), text
    profile = app.model.profile  # type: ignore[union-attr]
    # llama-cpp-python does not report its context: the first overflow names it, once
    assert profile.context == 2048 and profile.context_source == "learned"
    overflows = [r for r in caplog.records if "prompt too long for the server" in r.getMessage()]
    assert len(overflows) <= 1
    assert server.since(mark).count("exceed context window") <= 2  # the stream and its diagnosis
    no_tracebacks(caplog)


async def test_streamed_reply_shows_before_it_ends(
    llama: Llama, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server: LlamaServer = llama(2048)
    app: App = await app_factory(make_settings(llm=llm(server, max_tokens=160, context_tokens=2048),
                                               memory={"summary": False, "facts": False}))
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, str]] = []

    async def sink(delta: str) -> None:
        seen.append((loop.time(), delta))

    # in the card's language: SmolLM2 mostly answers Horo in Chinese, which an English chat refuses
    reply = await app.chain.handle(dm("给咱讲讲麦田和丰收节的事吧。"), Recorder(partial=sink))
    done = loop.time()
    assert answered(reply, caplog)
    assert "".join(d for _, d in seen).strip().startswith(reply.text[:10])
    # the screen shows whole sentences, the last few characters held back: a reply with a sentence end
    # well before its close arrives in pieces (the tiny model sometimes writes one long run without any)
    ends = [m.end() for m in _SENTENCE_END.finditer(reply.text)]
    if any(len(reply.text) - end > 2 * ReplyCheck.HOLD for end in ends):
        assert len(seen) >= 2 and seen[0][0] < done - 0.05  # text arrived before the reply was complete


async def test_memory_survives_a_restart_and_background_jobs_finish_within_caps(
    llama: Llama, make_settings: MakeSettings, app_factory: Any, redis_prefix: str, redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server: LlamaServer = llama(2048)
    memory = {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix, "history_tokens": 120,
              "summary_tokens": 60, "facts_every": 1}
    settings = make_settings(llm=llm(server, max_tokens=32, context_tokens=2048), memory=memory)
    caplog.set_level(logging.INFO)
    key = SessionKey("horo", "test", "dm", "u1")
    async with App.open(settings) as first:
        for text in ("我叫阿青，住在杭州。", "我养了一只猫，叫团子。", "我明天要去北方卖麦子。"):
            reply = await first.chain.handle(dm(text, name="阿青"))
            assert answered(reply, caplog)
        mark = server.mark()
        await asyncio.wait_for(first.background.drain(), 120)
        background = server.generated(mark)
    # summaries are capped at 1.5 x summary_tokens, facts at 160 tokens
    assert all(n <= 161 for n in background), background
    async with App.open(settings) as second:
        stored = await second.store.recent(key, 50)
        assert [t.text for t in stored if t.role == "user"][:3] == [
            "我叫阿青，住在杭州。", "我养了一只猫，叫团子。", "我明天要去北方卖麦子。"]
        reply = await second.chain.handle(dm("还记得我叫什么吗？", name="阿青"))
        assert answered(reply, caplog)
    no_tracebacks(caplog)


async def test_consecutive_turns_reuse_the_servers_prefix_cache(
    llama: Llama, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server: LlamaServer = llama(4096)
    settings = make_settings(llm=llm(server, max_tokens=40, context_tokens=4096),
                             memory={"summary": False, "facts": False}, bot={"rate_limit_per_minute": 1000})
    app: App = await app_factory(settings)
    mark = server.mark()
    questions = ["你好", "你喜欢苹果吗", "为什么", "那酒呢", "你的家乡在哪", "远吗", "你想回去吗",
                 "罗伦斯是谁", "他是商人吗", "你们去过哪些城市", "哪里最好玩", "冬天冷吗", "你怕冷吗",
                 "尾巴怎么保养", "你会变成狼吗", "狼的样子大吗", "你几岁了", "真的吗", "好吧", "晚安"]
    for text in questions:
        reply = await app.chain.handle(dm(text))
        assert answered(reply, caplog), text
    hits = server.prefix_hits(mark)[1:]  # the first turn has nothing cached yet
    cached = sum(c for c, _ in hits)
    total = sum(c + e for c, e in hits)
    share = cached / total
    print(f"prefix cache: {cached}/{total} prompt tokens cached over {len(hits)} turns ({share:.1%})")
    assert share >= 0.9, share


async def test_background_work_between_replies_leaves_the_next_replys_prefix_cached(
    llama: Llama, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Summaries and facts on, facts read after every message: a single-slot server still finds each
    reply's prefix, because the background requests follow the reply's own prompt."""
    caplog.set_level(logging.INFO)
    server: LlamaServer = llama(4096)
    settings = make_settings(llm=llm(server, max_tokens=40, context_tokens=4096),
                             memory={"facts_every": 1}, bot={"rate_limit_per_minute": 1000})
    app: App = await app_factory(settings)
    hits: list[tuple[int, int]] = []
    background = 0
    for i, text in enumerate(["你好", "我叫阿青，住在杭州", "你喜欢苹果吗", "我养了一只猫", "你的家乡在哪", "晚安"]):
        mark = server.mark()
        reply = await app.chain.handle(dm(text, name="阿青"))
        assert answered(reply, caplog), text
        if i:
            hits.extend(server.prefix_hits(mark)[:1])  # the reply's own request
        mark = server.mark()
        await asyncio.wait_for(app.background.drain(), 120)
        background += len(server.prefix_hits(mark))
    share = sum(c for c, _ in hits) / sum(c + e for c, e in hits)
    print(f"prefix cache with background work: {share:.1%} over {len(hits)} replies, {background} background requests")
    assert background >= 4 and share >= 0.8, (share, background)


def test_piped_terminal_chat_prints_only_replies_and_finishes_its_background_work(
    llama: Llama, tmp_path: Path
) -> None:
    server: LlamaServer = llama(2048)
    (tmp_path / "config.toml").write_text(
        # a tiny model on a busy 2-core machine writes the facts due at exit for longer than the default 20 s
        f'[personas]\ndirs = ["{ROOT / "persona"}"]\n[bot]\ndrain_seconds = 120.0\n[memory]\nbackend = "sqlite"\n'
        f'facts_every = 3\n[knowledge]\nenabled = false\n[llm]\nbase_url = "{server.base_url}"\nmax_tokens = 40\n'
        f'context_tokens = 2048\nrequest_timeout = 120.0\nfirst_token_timeout = 120.0\ndeadline = 120.0\n',
        encoding="utf-8",
    )
    out = run_bot(["chat"], tmp_path, "我叫阿青。\n我喜欢苹果。\n我住在杭州。\n", {"BOT_LOG_LEVEL": "INFO"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and not [ln for ln in lines if "INFO" in ln or "HTTP" in ln], lines
    log = (tmp_path / "data" / "logs" / "chat.log").read_text(encoding="utf-8")
    assert "Traceback" not in log and "cancelled at exit" not in log
    assert log.count("reply by model") + log.count("unusable") >= 3
    assert "facts about terminal:terminal" in log  # the facts job due on the last exchange ran before exit
