"""End to end over OneBot v11: a private command asked in a group answers only the asker, and nothing a
member said in private, nor another member's facts, reaches the group (`share_facts = true`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.commands.table import PRIVATE_ONLY, SENT_PRIVATELY
from core.config import Settings, load_config
from memory.open import open_store
from memory.turns import Fact, FactBook
from tests.conftest import ROOT
from tests.qq.onebot_impl import OneBotImpl, text
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port, wait_listening
from tests.support.requests import replies

TOKEN = "onebot-private-token"
SELF_ID, REFUSING_ID = "10000", "10001"
GROUP, ALICE, BOB = 30001, 20001, 20002
SENDS = ("send_msg", "send_private_msg", "send_group_msg")


def _config(folder: Path, llm: FakeOpenAI, redis_url: str, prefix: str) -> Settings:
    import tomli_w

    data = {
        "bot": {"data_dir": str(folder / "data")},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(folder / "imported")},
        "llm": {"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        # facts are read from the store and shared between conversations; none is extracted in these tests
        "memory": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix, "summary": False,
                   "facts": True, "facts_every": 100, "share_facts": True},
        "knowledge": {"enabled": False},
        "qq": {"enabled": True},
    }
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_config(path, env_file=folder / "no.env")


@pytest.fixture(scope="module")
async def bot(llm_server: FakeOpenAI, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Settings]]:
    """`python -m bot run --platform qq` with Redis memory; (WebSocket URL, settings)."""
    folder = tmp_path_factory.mktemp("qq-private")
    prefix = f"rptest:{uuid.uuid4().hex[:10]}"
    settings = _config(folder, llm_server, redis_url, prefix)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env |= {"BOT_QQ__PORT": str(port), "BOT_WEB__PORT": str(free_port()), "BOT_QQ__ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    log = folder / "bot.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--platform", "qq", "--config", str(settings.source),
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        await wait_listening(port, proc, log, timeout=30.0)
        store = await open_store(settings.memory)
        try:  # Alice told the bot something in a group, and a secret in her private chat
            book = FactBook((Fact(1, "喜欢苹果", 0.0, f"group:{GROUP}"), Fact(2, "银行卡密码是4321", 0.0, f"dm:{ALICE}")))
            await store.change_facts("horo", "qq", str(ALICE), lambda _: book)
        finally:
            await store.close()
        yield f"ws://127.0.0.1:{port}/onebot/v11/ws", settings
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, log.read_text(encoding="utf-8", errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
async def onebot(bot: tuple[str, Settings]) -> AsyncIterator[OneBotImpl]:
    impl = OneBotImpl(bot[0], SELF_ID, TOKEN)
    await impl.open()
    yield impl
    await impl.close()


async def sent(impl: OneBotImpl) -> tuple[str, dict[str, Any], str]:
    """The next message the bot sent: (action, params, its text)."""
    async with asyncio.timeout(10):
        while True:
            call = await impl.actions.get()
            if call["action"] in SENDS:
                params = call.get("params", {})
                return call["action"], params, "".join(s["data"].get("text", "") for s in params["message"])


def to_group(action: str, params: dict[str, Any]) -> bool:
    return action != "send_private_msg" and params.get("message_type", "group") == "group" and "group_id" in params


async def test_why_and_memory_asked_in_a_group_go_only_to_the_asker(onebot: OneBotImpl, llm: FakeOpenAI) -> None:
    llm.push(Script(text="汝好呀。"))
    await onebot.push(onebot.group_message([{"type": "at", "data": {"qq": SELF_ID}}, text(" 你好")],
                                           group_id=GROUP, user_id=ALICE, message_id=101, card="阿青"))
    action, params, said = await sent(onebot)
    assert to_group(action, params) and said.endswith("汝好呀。")
    prompt = "\n".join(str(m["content"]) for m in replies(llm.requests)[-1]["messages"])
    assert "喜欢苹果" in prompt and "4321" not in prompt  # what Alice said in private stays out of the group

    # Bob asks /why: the answer goes to Bob alone and names none of Alice's facts
    await onebot.push(onebot.group_message([text("/why")], group_id=GROUP, user_id=BOB, message_id=102, card="小红"))
    action, params, said = await sent(onebot)
    assert (action, params["user_id"], params["group_id"]) == ("send_private_msg", BOB, GROUP)
    assert said.startswith("The last reply (to 阿青") and "喜欢苹果" not in said and "4321" not in said
    action, params, said = await sent(onebot)
    assert to_group(action, params) and said.strip() == SENT_PRIVATELY

    # Alice asks /memory: her facts go to her privately; the group sees only that they did
    await onebot.push(onebot.group_message([text("/memory")], group_id=GROUP, user_id=ALICE, message_id=103, card="阿青"))
    action, params, said = await sent(onebot)
    assert (action, params["user_id"], params["group_id"]) == ("send_private_msg", ALICE, GROUP)
    assert "1. 喜欢苹果" in said and "4321" not in said
    action, params, said = await sent(onebot)
    assert to_group(action, params) and said.strip() == SENT_PRIVATELY


async def test_where_no_private_message_can_be_sent_the_group_is_told_so_and_nothing_more(
    bot: tuple[str, Settings], llm: FakeOpenAI
) -> None:
    impl = OneBotImpl(bot[0], REFUSING_ID, TOKEN, refuse=frozenset({"send_private_msg"}))
    await impl.open()
    try:
        await impl.push(impl.group_message([text("/memory")], group_id=GROUP, user_id=ALICE, message_id=201, card="阿青"))
        action, params, said = await sent(impl)
        assert (action, params["user_id"], params["group_id"]) == ("send_private_msg", ALICE, GROUP)  # refused
        action, params, said = await sent(impl)
        assert to_group(action, params) and said.strip() == PRIVATE_ONLY
        await asyncio.sleep(0.3)
        assert impl.actions.empty()  # nothing else went anywhere
    finally:
        await impl.close()
