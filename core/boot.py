"""Start-up shared by every command: settings from --config, logging with redaction."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import Settings, load_config
from core.logs import setup_logging


def settings_from(args: argparse.Namespace, log_file: str = "") -> Settings:
    """Load the config named by --config (or ./config.toml) and set up logging (to a file in the data folder)."""
    settings = load_config(getattr(args, "config", None))
    file = settings.bot.data_dir / log_file if log_file else None
    setup_logging(os.environ.get("BOT_LOG_LEVEL", settings.bot.log_level), settings.secrets(), file)
    return settings


def command_parser(prog: str, description: str, commands: Sequence[Any], config_help: str) -> argparse.ArgumentParser:
    """A parser whose commands each `register(sub, common)`; `common` carries --config for every command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    top = argparse.ArgumentParser(prog=prog, description=description, parents=[common])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        module.register(sub, common)
    return top


def run_command(args: argparse.Namespace, expected: tuple[type[Exception], ...], interrupted: str = "") -> int:
    """Run the chosen command; the expected errors end with one line and exit code 2."""
    try:
        return int(args.func(args) or 0)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if interrupted:
            print(interrupted, file=sys.stderr)
        return 130
