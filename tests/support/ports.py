"""Local ports for the servers tests and benchmarks start, and waiting for a started process to listen."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_listening(port: int, proc: asyncio.subprocess.Process, log: Path, timeout: float) -> None:
    """Wait until `proc` accepts connections on `port`; RuntimeError with its log when it exits first."""
    async with asyncio.timeout(timeout):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the bot exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return
