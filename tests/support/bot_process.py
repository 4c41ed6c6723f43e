"""`python -m bot run --platform qq` as a process of its own (started, stopped by a signal, started
again), with a OneBot implementation that records every message the bot sends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.qq.onebot_impl import OneBotImpl
from tests.support.ports import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]


class Recorder(OneBotImpl):
    """A OneBot v11 implementation that answers every action and keeps each message sent, with its time."""

    def __init__(self, url: str, self_id: str, token: str):
        super().__init__(url, self_id, token)
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            call = json.loads(raw)
            await self._ws.send(json.dumps(self._answer(call), ensure_ascii=False))
            if call["action"] in ("send_msg", "send_group_msg", "send_private_msg"):
                self.sent.append((time.perf_counter(), dict(call.get("params", {}))))
                self.arrived.set()

    def quoted(self) -> list[int]:
        """The message ids the sent messages quote (a reply quotes the message it answers), in order."""
        return [
            int(seg["data"]["id"])
            for _, params in self.sent
            for seg in params.get("message") or []
            if seg.get("type") == "reply"
        ]


class BotProcess:
    """One bot process at a time on a fixed port; each start writes its own log file."""

    def __init__(self, config: Path, token: str, env: dict[str, str] | None = None, python: str = sys.executable):
        self.config = config
        self.python = python  # another environment's interpreter (one with sentence-transformers, say)
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        self.env = {**base, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "BOT_QQ__PORT": str(self.port),
                    "BOT_QQ__ACCESS_TOKEN": token, "BOT_WEB__ENABLED": "false", **(env or {})}
        self.logs: list[Path] = []
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where OneBot implementations connect."""
        return f"ws://127.0.0.1:{self.port}/onebot/v11/ws"

    async def start(self, timeout: float = 90.0) -> None:
        """Start the bot and wait until it listens."""
        log = self.config.parent / f"bot-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "bot", "run", "--platform", "qq", "--config", str(self.config),
                cwd=self.config.parent, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        await wait_listening(self.port, self.proc, log, timeout)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 90.0) -> float:
        """Send `sig`; the seconds until the process exited (killed after `timeout`)."""
        assert self.proc is not None
        started = time.perf_counter()
        self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        return time.perf_counter() - started

    @property
    def returncode(self) -> int | None:
        """The last process's exit status."""
        return self.proc.returncode if self.proc else None

    def output(self, run: int = -1) -> str:
        """What a run wrote (stdout and stderr together)."""
        return self.logs[run].read_text(encoding="utf-8", errors="replace")

    async def close(self) -> None:
        """Kill a process still running (a failed test)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
