"""The page's own listener: the ASGI app behind the guard, served by uvicorn as a task in the bot's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.app import App
from bot.web import pages
from bot.web.auth import SESSION_COOKIE, Guard, Logins
from bot.web.characters import Characters
from bot.web.chat import WebChat
from bot.web.console import Console, Platforms
from bot.web.knowledge import KnowledgePage
from bot.web.logs import LogsPage
from core.config import Settings
from core.config.core import exposed_without_token

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def web_problem(settings: Settings) -> str:
    """Why the page must not start as configured ("" when it may): beyond this machine it needs a set token."""
    cfg = settings.web
    problem = exposed_without_token("web", cfg.host, cfg.token, "BOT_WEB__TOKEN", "the page needs a token of your own")
    return f"web: {problem}, or set host = \"127.0.0.1\" and use an SSH tunnel" if problem else ""


def token_for(settings: Settings) -> str:
    """The configured token, or a fresh random one for this start."""
    return settings.web.token.get_secret_value() or secrets.token_urlsafe(32)


def build_web(app: App, logins: Logins, platforms: Platforms) -> Starlette:
    """The whole page as one ASGI app: the routes, wrapped in the guard."""
    chat = WebChat(app)
    console = Console(app, platforms)
    characters = Characters(app)
    knowledge = KnowledgePage(app)
    logs = LogsPage(app, lambda: logins.token)

    async def home(request: Request) -> Response:
        if logins.valid(request.cookies.get(SESSION_COOKIE, "")):
            return RedirectResponse("/chat", 303)
        return HTMLResponse(pages.login_needed(), 401, headers={"www-authenticate": "Bearer"})

    async def logout(request: Request) -> Response:
        logins.close(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    routes = [
        Route("/", home),
        Route("/chat", chat.page),
        Route("/chat/send", chat.send, methods=["POST"]),
        Route("/api/status", console.status),
        Route("/conversations", console.conversations),
        Route("/conversation", console.conversation),
        Route("/conversation/forget", console.forget, methods=["POST"]),
        Route("/characters", characters.index),
        Route("/character", characters.edit),
        Route("/character/save", characters.save, methods=["POST"]),
        Route("/characters/import", characters.upload, methods=["POST"]),
        Route("/characters/switch", characters.switch, methods=["POST"]),
        Route("/knowledge", knowledge.index),
        Route("/knowledge/ingest", knowledge.ingest, methods=["POST"]),
        Route("/api/knowledge", knowledge.progress),
        Route("/logs", logs.index),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    web = Starlette(routes=routes)
    web.add_middleware(Guard, logins=logins)
    return web


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: whoever owns the loop (nonebot's server, the Discord or
    terminal runner) takes SIGTERM, drains the chain, and then stops the page."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The page's uvicorn server over an open App; `serve` runs until the loop's owner stops it."""

    def __init__(self, app: App, platforms: Platforms, token: str = "", out: TextIO = sys.stderr):
        self.settings = app.settings
        self.token = token or token_for(app.settings)
        self.logins = Logins(self.token)
        self.asgi = build_web(app, self.logins, platforms)
        cfg = app.settings.web
        config = uvicorn.Config(self.asgi, host=cfg.host, port=cfg.port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5)
        self.server = _Server(config)
        self.out = out

    @property
    def link(self) -> str:
        """The login link (it holds the token: printed once on the console, never logged)."""
        cfg = self.settings.web
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        return f"http://{host}:{self.port}/?token={self.token}"

    @property
    def port(self) -> int:
        """The port it listens on (the real one when configured as 0)."""
        servers = getattr(self.server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.settings.web.port

    async def serve(self) -> None:
        """Listen until stopped; the login link is printed once the port is open."""
        task = asyncio.create_task(self.server.serve(), name="web")
        while not self.server.started and not task.done():
            await asyncio.sleep(0.02)
        if self.server.started:
            print(f"web: open {self.link}", file=self.out, flush=True)
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind the port
            await task
        if not self.server.started:
            cfg = self.settings.web
            raise OSError(f"web: could not listen on {cfg.host}:{cfg.port}; set [web] port to a free one")

    async def stop(self) -> None:
        """Ask the server to finish (open streams end)."""
        self.server.should_exit = True
