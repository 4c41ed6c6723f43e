"""Run the real CLI (`python -m bot ...`) in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bot(
    args: list[str], cwd: Path, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` offline, without the BOT_ overrides of the shell running the tests."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    base.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, input=stdin, text=True, capture_output=True, env=base,
        timeout=timeout,
    )
