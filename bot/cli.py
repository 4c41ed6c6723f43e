"""The command line: `python -m bot <command>`; each command module registers itself here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import cmd_doctor, cmd_knowledge, cmd_persona, cmd_run, cmd_voice
from bot.config import ConfigError
from memory.store import StoreError
from persona.library import PersonaError

COMMANDS = [cmd_run, cmd_doctor, cmd_persona, cmd_knowledge, cmd_voice]


def parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="config file (default: config.toml)")
    top = argparse.ArgumentParser(prog="python -m bot", description="In-character roleplay bot.", parents=[common])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; config and card errors end with one line and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, PersonaError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
