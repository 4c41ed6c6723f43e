"""Where the shared test and benchmark data (corpora/, eval/) lives."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """$BOT_SHARED_DIR, else the first `shared` folder beside the checkout or above it, else /work/shared."""
    env = os.environ.get("BOT_SHARED_DIR")
    candidates = [Path(env)] if env else []
    candidates += [parent / "shared" for parent in ROOT.parents]
    candidates.append(Path("/work/shared"))
    for candidate in candidates:
        if (candidate / "corpora").is_dir():
            return candidate
    return candidates[0]
