"""SmolLM2 breaks often (loops, runs of marks, English in a Chinese chat): none of it is shown."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.app import App
from bot.checks.defects import DefectScan, known_words, language_of
from tests.conftest import MakeSettings
from tests.real_model.llama import LlamaServer
from tests.real_model.test_real_model import dm, llm, no_tracebacks
from tests.support.outlet import Recorder

CHAT = ("你好呀，今天心情怎么样？", "你最喜欢吃什么？", "给你带了一袋红苹果。", "今晚我们住哪家旅馆？")


async def test_a_short_chat_shows_no_broken_reply(
    llama: Any, make_settings: MakeSettings, app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server: LlamaServer = llama(4096)
    app: App = await app_factory(make_settings(llm=llm(server, context_tokens=4096)))
    horo = app.personas.get("horo")
    caplog.set_level(logging.INFO)
    modes = []
    for text in CHAT:
        shown: list[str] = []

        async def sink(delta: str, shown: list[str] = shown) -> None:
            shown.append(delta)

        reply = await app.chain.handle(dm(text), Recorder(partial=sink))
        assert reply is not None
        said = "".join(shown).strip()
        assert said.endswith(reply.text)  # what was shown is the reply (after any fragment an example line follows)
        modes.append(reply.mode)
        if reply.mode == "model":  # the model's words: whole, checked, within the card's size
            scan = DefectScan(language_of(text, "zh"), horo.card.reply_size.private.max,
                              known_words([text, "Alice", horo.name, *horo.card.nickname, *horo.card.aliases]))
            assert scan.scan(said, final=True) is None, said
    assert "model" in modes, modes  # the check cuts and retries; it does not throw the model away
    no_tracebacks(caplog)
