"""`chat` and `run`: talk in the terminal, or start every configured platform."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from bot.app import App
from bot.terminal.chat import TerminalChat
from bot.web.server import web_problem
from core.boot import settings_from
from core.config import Settings
from core.llm import LLMError
from core.logs import setup_logging
from core.loop import run as run_loop
from persona.library import PersonaLibrary

log = logging.getLogger(__name__)

CHAT_LOG = "logs/chat.log"  # the terminal chat logs here, never between the character's words
CONNECT_HINT = """\
How to connect things (see README.md):
  model   start an OpenAI-compatible server, e.g.
          lmdeploy serve api_server ./model --backend turbomind --server-port 23333
          or point BOT_LLM__BASE_URL / BOT_LLM__MODEL / BOT_LLM__API_KEY at one
  Discord set BOT_DISCORD__TOKEN (in the environment or .env)
  QQ      set BOT_QQ__ENABLED=true and connect NapCat/Lagrange to ws://HOST:PORT/onebot/v11/ws"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `chat` and `run`."""
    chat = sub.add_parser("chat", help="chat in the terminal", parents=[common])
    chat.add_argument("--persona", default="", help="persona id (default: [bot] default_persona)")
    chat.add_argument("--session", default="terminal", help="conversation name; history persists per name")
    chat.add_argument("--name", default="", help="what the character calls you (default: the card's name for the user)")
    chat.set_defaults(func=chat_cmd)
    run = sub.add_parser("run", help="start every configured platform", parents=[common])
    run.add_argument("--platform", choices=["all", "discord", "qq", "web", "terminal"], default="all",
                     help="one front alone; the web page ([web] enabled) runs beside discord and qq too")
    run.set_defaults(func=run_cmd)


async def announce_model(app: App) -> None:
    """Say which mode will answer; with no model, say how to connect one."""
    cfg = app.settings.llm
    if app.model is None:
        print("model: offline mode ([llm] provider = \"offline\"): answers come from the card's example lines", file=sys.stderr)
        return
    try:
        names = await app.model.models()
        print(f"model: {cfg.base_url} serves {', '.join(names) or '(no models listed)'}", file=sys.stderr)
    except LLMError:
        print(
            f"model: nothing answers at {cfg.base_url}; the character answers from its example lines "
            "until a model server is up", file=sys.stderr,
        )


def chat_cmd(args: argparse.Namespace) -> int:
    """Terminal chat."""
    settings = settings_from(args, log_file=CHAT_LOG)
    return run_loop(_chat(settings, args.persona, args.session, name=args.name))


async def _chat(settings: Settings, persona: str, session: str, hint: bool = False, name: str = "",
                web: bool = False) -> int:
    if persona:
        PersonaLibrary.configured(settings.personas).get(persona)
    async with App.open(settings) as app:
        interactive = sys.stdin.isatty()
        if interactive or hint:
            print(f"(log: {settings.bot.data_dir / CHAT_LOG})", file=sys.stderr)
            await announce_model(app)
            if hint:
                print(CONNECT_HINT, file=sys.stderr)
        chat = TerminalChat(app, session, persona, name=name).run(interactive)
        if web:  # the terminal and the page share the loop; /quit ends both
            from bot.web.run import together

            try:
                await together(app, chat, terminal=True)
            except OSError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        else:
            await chat
    return 0


def run_cmd(args: argparse.Namespace) -> int:
    """Start the configured platforms; with none, the terminal chat."""
    settings = settings_from(args)
    wanted = args.platform
    discord_on = wanted in ("all", "discord") and settings.discord.configured
    qq_on = wanted in ("all", "qq") and settings.qq.configured
    if wanted == "discord" and not discord_on:
        print("error: Discord is not configured: set BOT_DISCORD__TOKEN", file=sys.stderr)
        return 2
    if wanted == "qq" and not qq_on:
        print("error: QQ is not configured: set BOT_QQ__ENABLED=true ([qq] in config.toml)", file=sys.stderr)
        return 2
    web_on = wanted != "terminal" and settings.web.enabled
    if wanted == "web" and not web_on:
        print("error: the web page is off: set [web] enabled = true (or BOT_WEB__ENABLED=true)", file=sys.stderr)
        return 2
    if wanted == "web" or discord_on or qq_on:
        from bot.hosting.platforms import serve

        return serve(settings, discord=discord_on and wanted != "web", qq=qq_on and wanted != "web", web=web_on)
    # nothing else configured: the terminal chat, with the page beside it when it is on and may start
    # lines piped in (a script) are answered as before, without the page: it would end with the input
    web_on = web_on and sys.stdin.isatty()
    if web_on and (problem := web_problem(settings)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print("No platform is configured; starting the terminal chat"
          + (" and the web page." if web_on else "."), file=sys.stderr)
    setup_logging(os.environ.get("BOT_LOG_LEVEL", settings.bot.log_level), settings.secrets(),
                  settings.bot.data_dir / CHAT_LOG)
    return run_loop(_chat(settings, "", "terminal", hint=True, web=web_on))
