"""The plugin inside someone else's nonebot project (as nb-cli runs it), not our `python -m bot run`."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from tests.conftest import ROOT
from tests.qq.onebot_impl import OneBotImpl
from tests.support.openai_server import FakeOpenAI, Script

ENTRY = """\
import nonebot
from nonebot.adapters.onebot.v11 import Adapter

nonebot.init()
nonebot.get_driver().register_adapter(Adapter)
nonebot.load_plugin("plugins.roleplay")
nonebot.run()
"""


async def test_plugin_opens_its_app_in_a_host_project_and_answers(tmp_path: Path, llm: FakeOpenAI) -> None:
    """nonebot's .env (host, port, token, ROLEPLAY_CONFIG) configures it; our config.toml lives elsewhere."""
    ours = tmp_path / "roleplay"
    ours.mkdir()
    (ours / "config.toml").write_text(tomli_w.dumps({
        "bot": {"data_dir": str(ours / "data")},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(ours / "imported")},
        "llm": {"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        "memory": {"backend": "sqlite", "summary": False, "facts": False},
        "knowledge": {"enabled": False},
    }), encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = tmp_path / "host-project"
    host.mkdir()
    (host / ".env").write_text(
        f"DRIVER=~fastapi\nHOST=127.0.0.1\nPORT={port}\nONEBOT_ACCESS_TOKEN=host-token\n"
        f"ROLEPLAY_CONFIG={ours / 'config.toml'}\nSUPERUSERS=[\"123\"]\n",
        encoding="utf-8",
    )
    (host / "run.py").write_text(ENTRY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")} | {"PYTHONPATH": str(ROOT)}
    log = tmp_path / "host.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "run.py", cwd=host, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    impl = OneBotImpl(f"ws://127.0.0.1:{port}/onebot/v11/ws", "10000", "host-token")
    try:
        async with asyncio.timeout(30):
            while True:
                assert proc.returncode is None, log.read_text()
                try:
                    await impl.open()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        llm.push(Script(text="汝好。"))
        await impl.push(impl.private_message("你好", user_id=42, message_id=1))
        sent: dict[str, Any] = await impl.next_action("send_msg")
        assert sent["message"] == [{"type": "text", "data": {"text": "汝好。"}}]
        assert (ours / "data" / "memory.sqlite3").is_file()
        # the host's reverse-HTTP route wants its token too (the adapter alone checks only a signature)
        forged = impl.private_message("/reset", user_id=42, message_id=2)
        async with httpx.AsyncClient() as http:
            for headers, status in (({}, 401), ({"Authorization": "Bearer host-token"}, 204)):
                response = await http.post(f"http://127.0.0.1:{port}/onebot/v11/", json=forged,
                                           headers={"X-Self-ID": "10000", **headers})
                assert response.status_code == status
    finally:
        await impl.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
