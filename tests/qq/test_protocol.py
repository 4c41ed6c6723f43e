"""End to end: `python -m bot run --platform qq` as a process, a OneBot v11 implementation connected to it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.exceptions import InvalidStatus

from core.config import Settings, load_config
from memory.open import open_store
from memory.turns import SessionKey
from tests.conftest import ROOT
from tests.qq.onebot_impl import OneBotImpl, text
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port, wait_listening

TOKEN = "onebot-test-token"
SELF_ID = "10000"


@dataclass
class Running:
    """The bot process and where to reach it."""

    url: str
    settings: Settings
    proc: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        """What the process logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")






def _write_config(folder: Path, llm: FakeOpenAI, redis_url: str, prefix: str) -> Settings:
    """A real config.toml like `make_settings` writes, for a process shared by this module's tests."""
    import tomli_w

    data = {
        "bot": {"data_dir": str(folder / "data")},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(folder / "imported")},
        "llm": {"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        "memory": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix, "summary": False, "facts": False},
        "knowledge": {"enabled": False},
        "qq": {"enabled": True},
    }
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_config(path, env_file=folder / "no.env")


@pytest.fixture(scope="module")
async def bot_process(
    llm_server: FakeOpenAI, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """The real CLI serving QQ on a free port, answering with the local model server, memory in Redis.

    One process for the module (starting one costs seconds); it must stop cleanly on SIGINT.
    """
    folder = tmp_path_factory.mktemp("qq-process")
    prefix = f"rptest:{uuid.uuid4().hex[:10]}"
    settings = _write_config(folder, llm_server, redis_url, prefix)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env |= {"BOT_QQ__PORT": str(port), "BOT_WEB__PORT": str(free_port()), "BOT_QQ__ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    log = folder / "bot.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--platform", "qq", "--config", str(settings.source),
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    running = Running(f"ws://127.0.0.1:{port}/onebot/v11/ws", settings, proc, log)
    try:
        await wait_listening(port, proc, log, timeout=30.0)
        yield running
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, running.output()
        assert "Application shutdown complete" in running.output()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
async def onebot(bot_process: Running) -> AsyncIterator[OneBotImpl]:
    """A OneBot implementation connected with the right token (for the module, like a real one)."""
    impl = OneBotImpl(bot_process.url, SELF_ID, TOKEN)
    await impl.open()
    yield impl
    await impl.close()


def _types(message: list[dict[str, Any]]) -> list[str]:
    return [seg["type"] for seg in message]


async def test_group_and_private_chat_over_reverse_websocket(
    bot_process: Running, onebot: OneBotImpl, llm: FakeOpenAI
) -> None:
    llm.push(Script(text="咱就是赫萝。"), Script(text="汝还想听什么？"), Script(text="汝找咱？"))
    await onebot.push(onebot.group_message(
        [{"type": "at", "data": {"qq": SELF_ID}}, text(" 你是谁")], group_id=30001, user_id=20001, message_id=101, card="小明",
    ))
    sent = await onebot.next_action("send_msg")
    assert (sent["message_type"], sent["group_id"]) == ("group", 30001)
    assert sent["message"] == [
        {"type": "reply", "data": {"id": "101"}},
        {"type": "at", "data": {"qq": "20001"}},
        {"type": "text", "data": {"text": " 咱就是赫萝。"}},
    ]

    # a reply to the bot's message is addressed to it (the adapter asks get_msg who wrote the quote)
    bot_mid = max(onebot.messages)
    await onebot.push(onebot.group_message(
        [{"type": "reply", "data": {"id": str(bot_mid)}}, text("然后呢")], group_id=30001, user_id=20002, message_id=102,
    ))
    assert (await onebot.next_action("get_msg"))["message_id"] == bot_mid
    sent = await onebot.next_action("send_msg")
    assert sent["message"][0] == {"type": "reply", "data": {"id": "102"}}
    assert sent["message"][2] == {"type": "text", "data": {"text": " 汝还想听什么？"}}

    # an unaddressed message is kept as context, keyed by QQ number
    await onebot.push(onebot.group_message([text("路过说一句")], group_id=30001, user_id=20003, message_id=103, card="小明"))
    await onebot.push(onebot.private_message("在吗", user_id=20001, message_id=104))
    sent = await onebot.next_action("send_msg")
    assert (sent["message_type"], sent["user_id"]) == ("private", 20001)
    assert sent["message"] == [{"type": "text", "data": {"text": "汝找咱？"}}]

    store = await open_store(bot_process.settings.memory)
    try:
        group = await store.recent(SessionKey("horo", "qq", "group", "30001"), 20)
        private = await store.recent(SessionKey("horo", "qq", "dm", "20001"), 20)
    finally:
        await store.close()
    assert [(t.role, t.user_id, t.name, t.addressed) for t in group if t.role == "user"] == [
        ("user", "20001", "小明", True), ("user", "20002", "n20002", True), ("user", "20003", "小明", False),
    ]
    assert [t.text for t in private] == ["在吗", "汝找咱？"]
    assert len(llm.requests) == 3


async def test_cq_code_in_model_text_reaches_qq_as_literal_text(onebot: OneBotImpl, llm: FakeOpenAI) -> None:
    llm.push(Script(text="[CQ:at,qq=all] 都过来 [CQ:face,id=1]"))
    await onebot.push(onebot.group_message(
        [{"type": "at", "data": {"qq": SELF_ID}}, text("[CQ:at,qq=all] 喊一下大家")], group_id=30002, user_id=20001, message_id=201,
    ))
    sent = await onebot.next_action("send_msg")
    assert _types(sent["message"]) == ["reply", "at", "text"]
    assert sent["message"][1]["data"]["qq"] == "20001"
    assert sent["message"][2]["data"]["text"] == " [CQ:at,qq=all] 都过来 [CQ:face,id=1]"
    prompt = "\n".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert "[CQ:at,qq=all] 喊一下大家" in prompt  # the user's CQ-looking text was read as text, too


async def test_wrong_or_missing_access_token_is_refused(bot_process: Running, llm: FakeOpenAI) -> None:
    for token in ("wrong-token", ""):
        impl = OneBotImpl(bot_process.url, "10001", token)
        with pytest.raises(InvalidStatus) as refused:
            await impl.open()
        assert refused.value.response.status_code == 403
    assert TOKEN not in bot_process.output()
    right = OneBotImpl(bot_process.url, "10001", TOKEN)
    await right.open()
    await right.close()




async def test_a_burst_in_one_chat_is_answered_once_and_in_order(onebot: OneBotImpl, llm: FakeOpenAI) -> None:
    llm.push(Script(text="第一答", delay=1.0), Script(text="第二答"))
    await onebot.push(onebot.private_message("在吗", user_id=20009, message_id=301))
    await asyncio.sleep(0.4)  # the first reply is being written
    await onebot.push(onebot.private_message("问你个事", user_id=20009, message_id=302))
    await asyncio.sleep(0.2)  # nonebot handles events concurrently: messages sent 0 ms apart may swap
    await onebot.push(onebot.private_message("你喜欢吃啥", user_id=20009, message_id=303))
    first = await onebot.next_action("send_msg")
    second = await onebot.next_action("send_msg")
    assert [first["message"][0]["data"]["text"], second["message"][0]["data"]["text"]] == ["第一答", "第二答"]
    last_user = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert last_user == "问你个事\n你喜欢吃啥"
    with pytest.raises(TimeoutError):
        await onebot.next_action("send_msg", timeout=1.5)
