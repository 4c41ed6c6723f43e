"""End to end over the official QQ bot API: our process logs in through nonebot-adapter-qq to a local API."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.qq.official_server import ACCESS_TOKEN, OfficialQQ
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port

APP_ID, SECRET = "102000001", "official-secret-value"


@pytest.fixture
async def official() -> AsyncIterator[OfficialQQ]:
    """The local official API."""
    server = OfficialQQ(APP_ID, SECRET)
    await server.start()
    yield server
    await server.stop()


async def test_group_at_and_c2c_over_the_official_gateway(
    official: OfficialQQ, make_settings: Any, llm: FakeOpenAI, tmp_path: Path
) -> None:
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        memory={"summary": False, "facts": False},
        qq={"enabled": True},
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")} | {
        "PYTHONPATH": str(ROOT), "BOT_QQ__PORT": str(port), "BOT_WEB__PORT": str(free_port()),
        "BOT_QQ__OFFICIAL_APP_ID": APP_ID, "BOT_QQ__OFFICIAL_SECRET": SECRET,
        # nonebot-adapter-qq's own settings, read by nonebot from the environment
        "QQ_API_BASE": official.base, "QQ_AUTH_BASE": official.base + "app/getAppAccessToken",
    }
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--platform", "qq", "--config", str(settings.source),
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        assert official.identify is not None
        identify = await asyncio.wait_for(official.identify, 30)
        assert identify["op"] == 2
        assert identify["d"]["token"] == f"QQBot {ACCESS_TOKEN}"
        assert identify["d"]["intents"] & (1 << 25)  # group and C2C messages

        llm.push(Script(text="[CQ:at,qq=all] 咱在。"), Script(text="汝来了。"))
        author = {"id": "MEMBER-7", "member_openid": "MEMBER-7", "bot": False, "member_role": "member"}
        await official.dispatch("GROUP_AT_MESSAGE_CREATE", {
            "id": "msg-1", "content": " 你好", "timestamp": "2026-01-01T00:00:00+08:00",
            "group_id": "GROUP-1", "group_openid": "GROUP-1", "author": author,
        })
        path, body = await asyncio.wait_for(official.sent.get(), 20)
        assert path == "/v2/groups/GROUP-1/messages"
        assert (body["msg_type"], body["content"], body["msg_id"]) == (0, "[CQ:at,qq=all] 咱在。", "msg-1")

        await official.dispatch("C2C_MESSAGE_CREATE", {
            "id": "msg-2", "content": "在吗", "timestamp": "2026-01-01T00:00:00+08:00",
            "author": {"id": "USER-9", "user_openid": "USER-9"},
        })
        path, body = await asyncio.wait_for(official.sent.get(), 20)
        assert path == "/v2/users/USER-9/messages"
        assert (body["content"], body["msg_id"]) == ("汝来了。", "msg-2")
        assert SECRET not in log.read_text(encoding="utf-8", errors="replace")
    except BaseException:
        print(log.read_text(encoding="utf-8", errors="replace"))
        raise
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
