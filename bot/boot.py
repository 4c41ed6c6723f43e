"""Start-up shared by every command: settings from --config, logging with redaction."""

from __future__ import annotations

import argparse
import os

from bot.config import Settings, load_config
from bot.logs import setup_logging


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the config named by --config (or ./config.toml) and set up logging."""
    settings = load_config(getattr(args, "config", None))
    setup_logging(os.environ.get("BOT_LOG_LEVEL", settings.bot.log_level), settings.secrets())
    return settings
