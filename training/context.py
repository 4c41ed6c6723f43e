"""What every command needs from config.toml: the settings, the persona, the model endpoint."""

from __future__ import annotations

import argparse

from core.config import Settings, load_config
from persona.card import Persona
from persona.library import PersonaLibrary
from training.asker import Endpoint


def settings_from(args: argparse.Namespace) -> Settings:
    """The bot's config named by --config (or ./config.toml), read once."""
    return load_config(getattr(args, "config", None))


def persona_for(settings: Settings, pid: str | None) -> Persona:
    """--persona, else [training] persona, else [bot] default_persona, from the bot's persona folders."""
    library = PersonaLibrary.configured(settings.personas)
    return library.get(pid or settings.training.persona or settings.bot.default_persona)


def endpoint_for(settings: Settings, args: argparse.Namespace) -> Endpoint:
    """--base-url/--model/--api-key, else the [llm] section (the key from the environment or .env)."""
    llm = settings.llm
    return Endpoint(
        base_url=args.base_url or llm.base_url,
        model=args.model if args.model is not None else llm.model,
        api_key=args.api_key if args.api_key is not None else llm.api_key.get_secret_value(),
        timeout=settings.training.request_timeout,
    )


def add_endpoint_flags(p: argparse.ArgumentParser) -> None:
    """The flags that pick the model server for commands that ask a model."""
    p.add_argument("--base-url", default="", help="OpenAI-compatible base URL (default: [llm] base_url)")
    p.add_argument("--model", default=None, help="model id (default: [llm] model, else the server's first)")
    p.add_argument("--api-key", default=None, help="API key (default: [llm] api_key / BOT_LLM__API_KEY)")
    p.add_argument("--concurrency", type=int, default=0, help="requests at once (default: [training] concurrency)")
