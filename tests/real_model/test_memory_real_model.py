"""Long-term memory against a real model (llama.cpp + SmolLM2-135M): plumbing, not the model's wits.

The recalled block reaches a prompt that still fits the server's context as it counts it, and fact
extraction by a real (tiny) model ends within its cap and leaves only well-formed facts behind,
whatever the model wrote.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.app import App, Clocks
from core.messages import Incoming
from memory.summarizer import usable_fact
from memory.turns import SessionKey
from tests.conftest import MakeSettings
from tests.real_model.llama import LlamaServer
from tests.real_model.test_real_model import llm, no_tracebacks

T0 = 1_767_225_600.0


def group(text: str, uid: str, name: str, mid: int) -> Incoming:
    return Incoming("test", "g1", uid, name, text, message_id=str(mid))


async def test_recalled_turns_reach_a_prompt_that_fits_and_real_extraction_stays_well_formed(
    llama: Any, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server: LlamaServer = llama(2048)
    settings = make_settings(
        llm=llm(server, max_tokens=32, context_tokens=2048),
        memory={"backend": "sqlite", "max_turns": 30, "summary": False, "facts_every": 2, "recall_tokens": 200},
        bot={"rate_limit_per_minute": 10_000},
    )
    now = [T0]
    app: App = await app_factory(settings, clocks=Clocks(wall=lambda: now[0]))
    caplog.set_level(logging.INFO)
    await app.chain.handle(group("我家的猫叫团子，特别黏人", "u1", "阿青", 1))
    chatter = ["今天股市又跌了", "午饭吃什么好呢", "周末去爬山吗", "新出的电影不错", "楼下在修路好吵"]
    for i in range(60):
        now[0] += 1800
        await app.chain.handle(group(f"{chatter[i % 5]}（{i}）", f"u{i % 3 + 2}", f"路人{i % 3}", 10 + i))
    mark = server.mark()
    reply = await app.chain.handle(group("赫萝，还记得我家的猫叫什么吗？我住在杭州", "u1", "阿青", 100))
    # the model answered, or its broken answer was replaced (logged): either way the prompt reached it
    assert reply is not None and (reply.mode == "model" or any("unusable" in r.getMessage() for r in caplog.records))
    last = await app.store.last_context(SessionKey("horo", "test", "group", "g1"))
    assert last is not None
    memories = [c for c in last.cited if c.kind == "memory"]
    assert any("团子" in c.text for c in memories) and memories[0].source.startswith("昨天")  # 30 hours ago
    assert "exceed context window" not in server.since(mark)  # it fit as the server counts it
    reply = await app.chain.handle(group("赫萝，我还养了一条狗", "u1", "阿青", 101))
    assert reply is not None
    await asyncio.wait_for(app.background.drain(), 120)
    assert all(n <= 161 for n in server.generated(mark)), server.generated(mark)  # facts are capped at 160
    book = await app.store.fact_book("horo", "test", "u1")
    said = ["我家的猫叫团子，特别黏人", "赫萝，还记得我家的猫叫什么吗？我住在杭州", "赫萝，我还养了一条狗"]
    assert all(usable_fact(f.text, said) for f in book.facts)
    assert len(book.facts) <= app.settings.memory.facts_per_user
    assert book.noted.get("group:g1", 0) >= 63  # the extraction ran to the end and moved the read mark
    no_tracebacks(caplog)
