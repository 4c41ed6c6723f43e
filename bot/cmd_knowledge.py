"""`ingest` and `eval retrieval`: build and measure the knowledge index."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the knowledge commands."""
