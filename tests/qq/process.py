"""`python -m bot run --platform qq` as a process, for tests that talk to it over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import tomli_w

from core.config import Settings, load_config
from tests.conftest import ROOT
from tests.support.openai_server import FakeOpenAI
from tests.support.ports import free_port, wait_listening


@dataclass
class Running:
    """The bot process and where to reach it."""

    port: int
    settings: Settings
    proc: asyncio.subprocess.Process
    log: Path

    def url(self, path: str = "/onebot/v11/ws", scheme: str = "ws") -> str:
        """Where a route of the bot answers."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        """What the process logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


def write_config(folder: Path, llm: FakeOpenAI, redis_url: str, prefix: str, qq: dict[str, Any]) -> Settings:
    """A real config.toml: memory in Redis under `prefix`, the local model server, QQ on with `qq`."""
    data = {
        "bot": {"data_dir": str(folder / "data")},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(folder / "imported")},
        "llm": {"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        "memory": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix, "summary": False, "facts": False},
        "knowledge": {"enabled": False},
        "qq": {"enabled": True, **qq},
        "web": {"port": free_port()},  # the web page, on by default, on a port of its own
    }
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_config(path, env_file=folder / "no.env")


@asynccontextmanager
async def running_bot(
    folder: Path, llm: FakeOpenAI, redis_url: str, prefix: str, qq: dict[str, Any], env: dict[str, str]
) -> AsyncIterator[Running]:
    """The real CLI serving QQ on a free port; it must stop cleanly on SIGINT; its Redis keys go afterwards."""
    settings = write_config(folder, llm, redis_url, prefix, qq)
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    log = folder / "bot.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--platform", "qq", "--config", str(settings.source),
            cwd=folder, env=clean | {"BOT_QQ__PORT": str(port), "PYTHONPATH": str(ROOT)} | env,
            stdout=out, stderr=subprocess.STDOUT,
        )
    running = Running(port, settings, proc, log)
    try:
        await wait_listening(port, proc, log, timeout=30.0)
        yield running
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, running.output()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
