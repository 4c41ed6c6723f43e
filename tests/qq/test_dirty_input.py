"""Dirty input over the real reverse WebSocket: a lone surrogate from OneBot JSON no longer loses the message."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from memory.open import open_store
from memory.turns import SessionKey
from tests.qq.onebot_impl import OneBotImpl, text
from tests.qq.test_protocol import SELF_ID, TOKEN, Running, bot_process  # noqa: F401  (the running bot)
from tests.support.openai_server import FakeOpenAI, Script

UNSAFE = re.compile("[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f\u034f\u200b\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")


class EscapingImpl(OneBotImpl):
    """Writes events as NapCat does: non-ASCII as \\u escapes, so a lone surrogate arrives as `\\ud83d`."""

    async def push(self, event: dict[str, Any]) -> None:
        """Send one event, every non-ASCII character escaped."""
        assert self._ws is not None
        await self._ws.send(json.dumps(event, ensure_ascii=True))


@pytest.fixture(scope="module")
async def escaping(bot_process: Running) -> AsyncIterator[EscapingImpl]:  # noqa: F811
    """A OneBot implementation connected to the bot process."""
    impl = EscapingImpl(bot_process.url, SELF_ID, TOKEN)
    await impl.open()
    yield impl
    await impl.close()


async def test_a_lone_surrogate_in_name_and_text_is_cleaned_and_answered(
    bot_process: Running, escaping: EscapingImpl, llm: FakeOpenAI  # noqa: F811
) -> None:
    llm.push(Script(text="咱在呢。"))
    raw = "赫\u200b萝\ud83d 你在吗\u202e\U000e0041\x1b"
    event = escaping.group_message([text(raw)], group_id=31001, user_id=21001, message_id=901, card="阿青\ud83d\u2066")
    assert "\\ud83d" in json.dumps(event)  # the escape itself is what reaches the bot
    await escaping.push(event)
    sent = await escaping.next_action("send_msg")
    assert sent["message"][0] == {"type": "reply", "data": {"id": "901"}}
    assert sent["message"][2] == {"type": "text", "data": {"text": " 咱在呢。"}}
    prompt = "\n".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert "阿青: 赫萝 你在吗" in prompt and not UNSAFE.search(prompt)

    store = await open_store(bot_process.settings.memory)
    try:
        turns = await store.recent(SessionKey("horo", "qq", "group", "31001"), 10)
    finally:
        await store.close()
    assert [(t.name, t.text) for t in turns if t.role == "user"] == [("阿青", "赫萝 你在吗")]
    assert "Traceback" not in bot_process.output()
