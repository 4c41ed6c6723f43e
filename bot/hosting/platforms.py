"""Running the chat platforms (Discord, QQ) in one process.

With QQ on, nonebot's driver owns the event loop (uvicorn serving its ASGI app): the App is opened
in the driver's startup hook and Discord, when on too, runs as a task beside it. With Discord
alone, asyncio.run owns the loop. Platform libraries are imported only when their platform is on.
The QQ plugin (plugins/roleplay) finds the App in `holder`, which lives here so that importing it
never imports the plugin package (nonebot must be the one to load that).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from bot.app import App
from bot.hosting.onebot_guard import guard_nonebot
from bot.web.server import web_problem
from core.config import Settings
from core.config.core import exposed_without_token
from core.loop import run as run_loop
from core.outlet import Poster

if TYPE_CHECKING:
    import discord
    import uvicorn

log = logging.getLogger(__name__)
EVENT_GRACE = 5.0  # seconds a stop waits for events already received to reach the journal


class AppHolder:
    """Holds the one App the QQ matchers use; opening it here ties its lifetime to this holder."""

    def __init__(self) -> None:
        self.app: App | None = None
        self.hosted = False
        self.offered: dict[str, Callable[[Settings], Poster]] = {}
        self._stack: AsyncExitStack | None = None

    def get(self) -> App:
        """The App; a clear error when nothing opened one yet."""
        if self.app is None:
            raise RuntimeError("the roleplay App is not open yet (the driver's startup hook opens it)")
        return self.app

    def host(self) -> None:
        """Say that the host process opens the App, so the plugin must not open one of its own."""
        self.hosted = True

    def set(self, app: App | None) -> None:
        """Use an App whose lifetime someone else manages (tests, embedding hosts)."""
        self.app = app

    def offer(self, platform: str, poster: Callable[[Settings], Poster]) -> None:
        """A front loaded before the App opens (the QQ plugin) offers how it speaks first; `open` hands it in."""
        self.offered[platform] = poster

    async def open(self, settings: Settings, posters: Mapping[str, Poster] | None = None) -> App:
        """Open an App from settings, with the offered posters and `posters`; `close` closes it."""
        await self.close()
        stack = AsyncExitStack()
        made = {platform: make(settings) for platform, make in self.offered.items()}
        self.app = await stack.enter_async_context(App.open(settings, posters={**made, **(posters or {})}))
        self._stack = stack
        return self.app

    async def close(self) -> None:
        """Close the App opened here (idempotent); an App given with `set` is only forgotten."""
        stack, self._stack = self._stack, None
        self.app = None
        if stack is not None:
            await stack.aclose()


holder = AppHolder()


def listener_problem(settings: Settings) -> str:
    """Why the QQ listener must not start as configured ("" when it may): beyond this machine it needs a token."""
    cfg = settings.qq
    problem = exposed_without_token("qq", cfg.host, cfg.access_token, "BOT_QQ__ACCESS_TOKEN", "OneBot needs an access token")
    return f"QQ: {problem} and the same token in the OneBot implementation" if problem else ""


def serve(settings: Settings, *, discord: bool, qq: bool, web: bool = False) -> int:
    """Start the platform front-ends that are on; the exit status for the CLI."""
    if web and (problem := web_problem(settings)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if qq:
        if problem := listener_problem(settings):
            print(f"error: {problem}", file=sys.stderr)
            return 2
        return _serve_qq(settings, discord=discord, web=web)
    if discord or web:
        try:
            return run_loop(_discord_only(settings, discord, web))
        except KeyboardInterrupt:
            return 0
    print("error: no platform to start", file=sys.stderr)
    return 2


def discord_client(settings: Settings) -> tuple[discord.Client, dict[str, Poster]]:
    """The Discord client, made before the App, and its poster for the App (speaking first)."""
    from bot.discord_front import discord_poster, new_client

    client = new_client(settings.discord)
    return client, {"discord": discord_poster(client)}


async def _discord_only(settings: Settings, discord: bool = True, web: bool = False) -> int:
    from bot.discord_front import DiscordStartError, serve_discord

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    made, posters = discord_client(settings) if discord else (None, {})
    try:
        async with App.open(settings, posters=posters) as app:
            serving = serve_discord(app, made) if made is not None else None
            if web:
                from bot.web.run import together

                front = together(app, serving, discord=discord)
            else:
                assert serving is not None  # Discord alone when the page is off
                front = serving
            client = asyncio.create_task(front, name="fronts")
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({client, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not client.done():
                stop.clear()  # a second signal cuts the drain short
                await app.drain(stop.is_set)
                client.cancel()
            await asyncio.gather(client, return_exceptions=True)
            if not client.cancelled():
                client.result()  # the front's own reason for stopping, if it stopped by itself
    except DiscordStartError as exc:
        print(f"error: Discord: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the page could not listen
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


class Runner:
    """The driver's startup/shutdown hooks: open the App for the plugin, run Discord beside it."""

    def __init__(self, settings: Settings, discord: bool, web: bool = False):
        self.settings = settings
        self.discord = discord
        self.web = web
        self.server: uvicorn.Server | None = None
        self.error = ""
        self._task: asyncio.Task[None] | None = None
        self._web: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Open the App (the plugin finds it in `holder`); start Discord when it is on."""
        client, posters = discord_client(self.settings) if self.discord else (None, {})
        try:
            app = await holder.open(self.settings, posters)
        except Exception as exc:  # end with one line instead of uvicorn's traceback
            log.debug("startup failed", exc_info=exc)
            self.error = f"could not start: {exc}"
            if self.server is not None:
                self.server.should_exit = True
            return
        if client is not None:
            from bot.discord_front import serve_discord

            self._task = asyncio.create_task(serve_discord(app, client), name="discord")
            self._task.add_done_callback(self._discord_ended)
        if self.web:
            from bot.web.run import together

            self._web = asyncio.create_task(together(app, discord=self.discord, qq=True), name="web")
            self._web.add_done_callback(self._web_ended)

    def _web_ended(self, task: asyncio.Task[None]) -> None:
        """The page failing to listen ends the whole process (with its reason)."""
        if task.cancelled() or task.exception() is None:
            return
        self.error = str(task.exception())
        if self.server is not None:
            self.server.should_exit = True

    def _discord_ended(self, task: asyncio.Task[None]) -> None:
        """Discord stopping on its own ends the whole process (with its reason)."""
        if task.cancelled():
            return
        exc = task.exception()
        self.error = f"Discord: {exc}" if exc else "Discord: the client stopped"
        if exc is not None and type(exc).__name__ != "DiscordStartError":
            log.error("Discord front-end failed", exc_info=exc)
        if self.server is not None:
            self.server.should_exit = True

    async def drain(self) -> None:
        """Before the server closes its connections: answer what is in hand (replies still go out)."""
        if holder.app is None:
            return
        await holder.app.drain(lambda: self.server is not None and self.server.force_exit)
        # events nonebot took in and had not yet handed to the plugin reach the stopped chain now,
        # which journals them for the next start
        import nonebot

        events = [t for a in nonebot.get_adapters().values() for t in getattr(a, "tasks", ()) if not t.done()]
        if events:
            await asyncio.wait(events, timeout=EVENT_GRACE)

    async def shutdown(self) -> None:
        """Stop Discord and the page, then close the App."""
        for task in (self._task, self._web):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await holder.close()


def nonebot_options(settings: Settings) -> dict[str, Any]:
    """nonebot.init keyword arguments from [qq] (and [bot] log_level)."""
    cfg = settings.qq
    options: dict[str, Any] = {
        "driver": "~fastapi+~httpx+~websockets" if cfg.official else "~fastapi",
        "host": cfg.host,
        "port": cfg.port,
        "log_level": settings.bot.log_level,
        "superusers": set(cfg.superusers),
        "command_start": {"/"},
        "onebot_access_token": cfg.access_token.get_secret_value() or None,
    }
    if cfg.official:
        intents = {"guilds": True, "at_messages": True, "direct_message": True, "c2c_group_at_messages": True}
        options["qq_bots"] = [
            {"id": cfg.official_app_id, "secret": cfg.official_secret.get_secret_value(), "intent": intents}
        ]
        if cfg.official_sandbox:
            options["qq_api_base"] = "https://sandbox.api.sgroup.qq.com/"
    return options


# nonebot's lines for every event: the event received (text and all, at SUCCESS), "Event will be
# handled by ...", "... running complete". At INFO they would cost more than the event itself and
# put what people write in the log: they are DEBUG lines.
_PER_EVENT = {("message", "handle_event"), ("message", "_run_matcher"), ("matcher", "simple_run")}


def _per_event(record: Any) -> bool:
    """One of nonebot's lines for every event (its warnings and errors are not)."""
    return (record["module"], record["function"]) in _PER_EVENT and record["level"].no < logging.WARNING


def _to_logging(message: Any) -> None:
    """A loguru sink that hands nonebot's records to `logging` (where secrets are redacted)."""
    record = message.record
    level = logging.DEBUG if _per_event(record) else record["level"].no
    logging.getLogger(record["name"] or "nonebot").log(level, "%s", str(message).rstrip("\n"))


def init_nonebot(settings: Settings) -> Any:
    """Initialise nonebot for [qq], register the adapters that are on, return the driver."""
    import nonebot
    from nonebot.adapters.onebot.v11 import Adapter as OneBotAdapter
    from nonebot.log import logger

    logging.addLevelName(25, "SUCCESS")  # loguru's level between INFO and WARNING
    logger.remove()
    debug = logging.getLevelName(settings.bot.log_level) <= logging.DEBUG
    logger.add(_to_logging, level=settings.bot.log_level, format="{message}", colorize=False, diagnose=False,
               filter=None if debug else (lambda record: not _per_event(record)))
    # our settings come from config.toml and BOT_*; nonebot must not read a .env of its own
    nonebot.init(_env_file=(os.devnull,), **nonebot_options(settings))
    driver = nonebot.get_driver()
    driver.register_adapter(OneBotAdapter)
    if settings.qq.official:
        from nonebot.adapters.qq import Adapter as OfficialAdapter

        driver.register_adapter(OfficialAdapter)
    guard_nonebot()  # every OneBot route, reverse HTTP included, proves the token (the adapter checks only its WebSocket)
    return driver


def _draining_server(config: uvicorn.Config, runner: Runner) -> uvicorn.Server:
    """uvicorn's server, draining the chain on a stop before it closes the OneBot connections."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await runner.drain()
            await super().shutdown(sockets)

    return Server(config)


def _serve_qq(settings: Settings, *, discord: bool, web: bool = False) -> int:
    import nonebot
    import uvicorn

    runner = Runner(settings, discord, web)
    holder.host()
    driver = init_nonebot(settings)
    driver.on_startup(runner.startup)
    driver.on_shutdown(runner.shutdown)
    nonebot.load_plugin("plugins.roleplay")
    cfg = settings.qq
    server = _draining_server(
        uvicorn.Config(nonebot.get_asgi(), host=cfg.host, port=cfg.port, log_config=None, access_log=False), runner
    )
    runner.server = server
    # a stop before uvicorn listens for signals stops it too; after it, uvicorn sends SIGTERM here
    # again once it has shut down, which must not end the process with the signal's status
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    log.info("QQ: OneBot v11 implementations connect to ws://%s:%d/onebot/v11/ws", cfg.host, cfg.port)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind the port
        runner.error = runner.error or f"QQ: could not listen on {cfg.host}:{cfg.port} (exit {exc.code})"
    except KeyboardInterrupt:
        pass
    if runner.error:
        print(f"error: {runner.error}", file=sys.stderr)
        return 1
    if not server.started:
        print("error: QQ: the server did not start (see the log above)", file=sys.stderr)
        return 1
    return 0
