"""The command line: `python -m bot <command>`; each command module registers itself here."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from bot.cli import cmd_doctor, cmd_knowledge, cmd_persona, cmd_run, cmd_voice
from core.boot import command_parser, run_command
from core.config import ConfigError
from memory.store import StoreError
from persona.library import PersonaError

COMMANDS = [cmd_run, cmd_doctor, cmd_persona, cmd_knowledge, cmd_voice]


def parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    return command_parser("python -m bot", "In-character roleplay bot.", COMMANDS, "config file (default: config.toml)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; config, card and store errors end with one line and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    return run_command(parser().parse_args(argv), (ConfigError, PersonaError, StoreError))
