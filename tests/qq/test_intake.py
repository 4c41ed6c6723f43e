"""The intake seen from QQ (the real process over OneBot): a flooding member is set aside before the
journal and the queue; what the character will answer is journaled, chatter is not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from persona.library import PersonaLibrary
from tests.conftest import ROOT
from tests.qq.onebot_impl import OneBotImpl, text
from tests.qq.process import Running, running_bot
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import replies
from tests.support.stored import kept_turns

TOKEN = "intake-test-token"
SELF_ID = "10000"
AT = {"type": "at", "data": {"qq": SELF_ID}}


@pytest.fixture
async def bot(llm: FakeOpenAI, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Running]:
    """The bot on Redis, two messages a minute per member, each answered on its own (no burst merging),
    replies sent at once (no pacing)."""
    env = {"BOT_QQ__ACCESS_TOKEN": TOKEN, "BOT_BOT__RATE_LIMIT_PER_MINUTE": "2", "BOT_PACING__ENABLED": "false",
           "BOT_BOT__MERGE_BURSTS": "false"}
    async with running_bot(tmp_path, llm, redis_url, redis_prefix, {}, env) as running:
        yield running


@pytest.fixture
async def onebot(bot: Running) -> AsyncIterator[OneBotImpl]:
    """The OneBot implementation, connected."""
    impl = OneBotImpl(bot.url(), SELF_ID, TOKEN)
    await impl.open()
    yield impl
    await impl.close()


async def sent(onebot: OneBotImpl, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The next `count` messages the bot sends; then none more for half a second."""
    out = [await onebot.next_action("send_msg", timeout) for _ in range(count)]
    with pytest.raises(TimeoutError):
        out.append(await onebot.next_action("send_msg", 0.5))
    return out


def quoted(params: dict[str, Any]) -> int:
    """The message id a sent message quotes."""
    return next(int(s["data"]["id"]) for s in params["message"] if s["type"] == "reply")


class Journal:
    """What the journal in Redis holds: the messages pending, and the done marks of those answered."""

    def __init__(self, bot: Running):
        self.prefix = f"{bot.settings.memory.key_prefix}:v2"
        self.client = aioredis.Redis.from_url(bot.settings.memory.redis_url.get_secret_value(), decode_responses=True)

    def mark(self, group: int, mid: int) -> str:
        return f"qq:{SELF_ID}:group:{group}:{mid}"

    async def pending(self) -> set[str]:
        return set(await self.client.hkeys(f"{self.prefix}:journal:owner"))

    async def done(self, group: int, mid: int) -> bool:
        return bool(await self.client.exists(f"{self.prefix}:seen:{self.mark(group, mid)}"))


async def test_a_flooding_member_is_set_aside_before_the_journal_and_the_queue(
    bot: Running, onebot: OneBotImpl, llm: FakeOpenAI
) -> None:
    group, flooder = 30101, 20101
    llm.push(Script(text="咱听着呢。", delay=3.0))  # the first answer is slow: the flood comes while it is written
    for i in range(10):
        await onebot.push(onebot.group_message([AT, text(f" 第{i}句")], group_id=group, user_id=flooder, message_id=701 + i))
    await onebot.push(onebot.group_message([text("今天天气不错")], group_id=group, user_id=20102, message_id=720))
    answers = await sent(onebot, 3)
    # the third message is over the limit: its notice goes out at once, not after the slow answer before it
    assert [quoted(a) for a in answers] == [703, 701, 702]
    notice = "".join(s["data"].get("text", "") for s in answers[0]["message"]).strip()
    assert notice in PersonaLibrary([ROOT / "persona"]).get("horo").card.lines.rate_limited
    assert len(replies(llm.requests)) == 2  # the flood reached the model not once
    journal = Journal(bot)
    try:
        assert await journal.pending() == set()
        assert [await journal.done(group, mid) for mid in (701, 702)] == [True, True]
        assert not any([await journal.done(group, mid) for mid in (*range(703, 711), 720)])
    finally:
        await journal.client.aclose()
    kept = [(t.text, t.addressed) for t in await kept_turns(bot.settings, group) if t.role == "user"]
    assert sorted(kept) == sorted([("第0句", True), ("第1句", True), ("今天天气不错", False),
                                   *((f"第{i}句", False) for i in range(2, 10))])


async def test_what_the_character_will_answer_is_journaled_as_it_waits_and_chatter_never(
    bot: Running, onebot: OneBotImpl, llm: FakeOpenAI
) -> None:
    group = 30201
    llm.push(Script(text="咱在。", delay=2.0))
    journal = Journal(bot)
    try:
        await onebot.push(onebot.group_message([text("你们谁看过昨天的球赛")], group_id=group, user_id=20201, message_id=801))
        await onebot.push(onebot.group_message([text("赫萝，你在吗")], group_id=group, user_id=20202, message_id=802))
        called = journal.mark(group, 802)
        deadline = time.monotonic() + 1.5
        while called not in await journal.pending():  # called by name alone: journaled while its answer is written
            assert time.monotonic() < deadline, "the message the character answers was not journaled"
            await asyncio.sleep(0.05)
        assert journal.mark(group, 801) not in await journal.pending()
        assert [quoted(a) for a in await sent(onebot, 1)] == [802]
        assert await journal.pending() == set() and await journal.done(group, 802)
        assert not await journal.done(group, 801)
    finally:
        await journal.client.aclose()
    kept = [(t.text, t.addressed) for t in await kept_turns(bot.settings, group) if t.role == "user"]
    assert kept == [("你们谁看过昨天的球赛", False), ("赫萝，你在吗", True)]
