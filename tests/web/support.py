"""A running page for tests: the real App, the real uvicorn listener on a free port, a known token."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from bot.app import App
from bot.web.run import fronts
from bot.web.server import WebServer
from core.config import Settings
from tests.support.ports import free_port

TOKEN = "test-token-" + "x" * 32
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_TEXT = "<script>alert(2)</script> 赫萝"


@dataclass
class Page:
    """The started page: its App, server and address."""

    app: App
    server: WebServer
    base: str
    console: io.StringIO


def web_section() -> dict[str, object]:
    """A [web] section on a free local port."""
    return {"host": "127.0.0.1", "port": free_port()}


@asynccontextmanager
async def logged_in(page: Page) -> AsyncIterator[httpx.AsyncClient]:
    """A client that opened the login link and sends this page's Origin, as the page's own forms do."""
    host = page.base.removeprefix("http://")
    async with httpx.AsyncClient(base_url=page.base, headers={"Origin": f"http://{host}"}) as client:
        assert (await client.get(f"/?token={TOKEN}")).status_code == 303
        yield client


@asynccontextmanager
async def running_page(settings: Settings, token: str = TOKEN) -> AsyncIterator[Page]:
    """Open the App and serve the page until the block ends."""
    console = io.StringIO()
    async with App.open(settings) as app:
        server = WebServer(app, fronts(app, discord=False, qq=False), token=token, out=console)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.02)
        try:
            yield Page(app, server, f"http://127.0.0.1:{server.port}", console)
        finally:
            await server.stop()
            await asyncio.wait_for(task, 10)
