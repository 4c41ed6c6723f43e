"""Limits seen from QQ: a runaway model stream, a 1 MB message, what reaches the log (the real process)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config import QQConfig
from core.logs import LINE_CHARS
from tests.conftest import ROOT
from tests.qq.onebot_impl import OneBotImpl, text
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port, wait_listening
from tests.support.texts import talkative_persona, varied_chinese

TOKEN = "onebot-limits-token"
SELF_ID = "10000"
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|SUCCESS|WARNING|ERROR|CRITICAL) ")
LEVELS = {"DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def test_a_merged_forward_has_a_bounded_number_of_nodes(roleplay_plugin: object) -> None:
    from plugins.roleplay.delivery import MAX_PARTS, plan

    cut = plan("咱乃贤狼赫萝。" * 2000, QQConfig(message_chars=50, forward_over_chars=600))
    assert cut.kind == "forward" and len(cut.chunks) == MAX_PARTS
    assert all(len(c) <= 50 for c in cut.chunks) and cut.chunks[-1].endswith("…")
    assert len(plan("咱乃贤狼赫萝。" * 2000, QQConfig(message_chars=50, forward_over_chars=0)).chunks) == MAX_PARTS


@dataclass
class Bot:
    """The bot process, its log, and the OneBot side connected to it."""

    proc: asyncio.subprocess.Process
    log: Path
    onebot: OneBotImpl

    def records(self) -> list[tuple[int, str]]:
        """Each logged line with the level of the record it belongs to."""
        out: list[tuple[int, str]] = []
        level = 0
        for line in self.log.read_text(encoding="utf-8", errors="replace").split("\n"):
            found = RECORD.match(line)
            level = LEVELS[found.group(1)] if found else level
            out.append((level, line))
        return out


@pytest.fixture(scope="module")
async def bot(llm_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bot]:
    """`python -m bot run --platform qq` logging at DEBUG, SQLite memory, replies unpaced and cut to 50 characters."""
    import tomli_w

    folder = tmp_path_factory.mktemp("qq-limits")
    config = {
        "bot": {"data_dir": str(folder / "data"), "log_level": "DEBUG"},
        # a card whose character may talk at length: the stream's own caps are what ends a runaway here
        "personas": {"dirs": [str(talkative_persona(folder / "cards"))], "import_dir": str(folder / "imported")},
        "llm": {"base_url": llm_server.base_url, "model": "test-model", "retry_after": 0},
        "memory": {"backend": "sqlite", "summary": False, "facts": False},
        "knowledge": {"enabled": False},
        "pacing": {"enabled": False},
        "qq": {"enabled": True, "message_chars": 50, "forward_over_chars": 600},
    }
    (folder / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env |= {"BOT_QQ__PORT": str(port), "BOT_WEB__PORT": str(free_port()), "BOT_QQ__ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    log = folder / "bot.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--platform", "qq", "--config", str(folder / "config.toml"),
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    impl = OneBotImpl(f"ws://127.0.0.1:{port}/onebot/v11/ws", SELF_ID, TOKEN)
    try:
        await wait_listening(port, proc, log, timeout=30.0)
        await impl.open()
        yield Bot(proc, log, impl)
    finally:
        await impl.close()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_a_runaway_stream_ends_as_a_bounded_forward_in_time(bot: Bot, llm: FakeOpenAI) -> None:
    from plugins.roleplay.delivery import MAX_PARTS

    llm.push(Script(text=varied_chinese(2_000_000), chunk_size=16))  # never looping: the reply size ends it
    started = time.monotonic()
    await bot.onebot.push(bot.onebot.private_message("讲个很长的故事", user_id=20001, message_id=301))
    sent = await bot.onebot.next_action("send_private_forward_msg", timeout=30)
    took = time.monotonic() - started
    assert took < 10.0, f"the reply to a 2 MB stream took {took:.1f} s"
    nodes = sent["messages"]
    assert 1 < len(nodes) <= MAX_PARTS
    assert all(len(seg["data"]["text"]) <= 50 for node in nodes for seg in node["data"]["content"])
    assert await asyncio.to_thread(llm.wait_for_streams, 1) and llm.hung_up == 1


async def test_a_1_mb_message_leaves_short_log_lines_and_no_text_at_info(bot: Bot, llm: FakeOpenAI) -> None:
    llm.push(Script(text="嗯。"))
    words = "PRIVATE-WORDS-" + "a" * 1_000_000
    await bot.onebot.push({**bot.onebot.private_message(words, user_id=20002, message_id=302)})
    sent = await bot.onebot.next_action("send_msg", timeout=30)
    assert sent["message"] == [text("嗯。")]
    records = bot.records()
    assert any("PRIVATE-WORDS" in line for _, line in records)  # logged at DEBUG, cut
    assert max(len(line) for _, line in records) <= LINE_CHARS
    assert not [line[:200] for level, line in records if level >= LEVELS["INFO"] and "PRIVATE-WORDS" in line]
