"""The command line: `python -m training <command>`; each command module registers itself here."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from core.boot import command_parser, run_command
from core.config import ConfigError
from persona.library import PersonaError
from training import cmd_build, cmd_prepare, cmd_smoke
from training.errors import TrainingError

COMMANDS = [cmd_prepare, cmd_build, cmd_smoke]


def parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    return command_parser(
        "python -m training", "Datasets, xtuner (Q)LoRA, merge, AWQ and TurboMind serving, GGUF export.", COMMANDS,
        "bot config file (default: config.toml)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; config, card and toolkit errors end with one line and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run_command(
        parser().parse_args(argv), (ConfigError, PersonaError, TrainingError),
        "interrupted: finished work is kept; rerun the same command to go on",
    )
