"""The command line: `python -m training <command>`; each command module registers itself here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError
from persona.library import PersonaError
from training import cmd_build, cmd_prepare
from training.errors import TrainingError

COMMANDS = [cmd_prepare, cmd_build]


def parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="bot config file (default: config.toml)")
    top = argparse.ArgumentParser(
        prog="python -m training", description="Datasets, xtuner QLoRA, merge, AWQ and TurboMind serving.",
        parents=[common],
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; config, card and toolkit errors end with one line and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, PersonaError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to go on", file=sys.stderr)
        return 130
