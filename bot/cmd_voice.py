"""`voice`: run the voice chain once and write the clip."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the voice command."""
