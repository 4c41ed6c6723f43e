"""Running the page beside the other fronts, or alone; what /api/status says about each front."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.app import App
from bot.web.console import Platforms
from bot.web.server import WebServer

log = logging.getLogger(__name__)


def fronts(app: App, *, discord: bool, qq: bool, terminal: bool = False) -> Platforms:
    """What /api/status reports about each front (QQ: the accounts connected right now)."""
    cfg = app.settings.web

    def report() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {"web": {"enabled": True, "connected": True, "listen": f"{cfg.host}:{cfg.port}"}}
        out["discord"] = {"enabled": discord}
        out["qq"] = {"enabled": qq, "connected": False, "accounts": []}
        if qq:
            import nonebot

            accounts = sorted(nonebot.get_bots())
            out["qq"] |= {"connected": bool(accounts), "accounts": accounts}
        out["terminal"] = {"enabled": terminal}
        return out

    return report


async def together(app: App, main: Coroutine[Any, Any, object] | None = None, *, discord: bool = False,
                   qq: bool = False, terminal: bool = False) -> None:
    """Serve the page beside `main` (Discord, the terminal chat) until either ends; its error is raised."""
    server = WebServer(app, fronts(app, discord=discord, qq=qq, terminal=terminal))
    web = asyncio.create_task(server.serve(), name="web")
    other = asyncio.create_task(main, name="front") if main is not None else None
    try:
        await asyncio.wait([t for t in (web, other) if t is not None], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await server.stop()
        if other is not None and not other.done():
            other.cancel()
        results = await asyncio.gather(*(t for t in (web, other) if t is not None), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
