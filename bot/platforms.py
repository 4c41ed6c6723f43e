"""Running the chat platforms (Discord, QQ) in one process."""

from __future__ import annotations

import sys

from bot.config import Settings


def serve(settings: Settings, *, discord: bool, qq: bool) -> int:
    """Start the platform front-ends that are configured."""
    names = " and ".join(n for n, on in (("Discord", discord), ("QQ", qq)) if on)
    print(f"error: the {names} front-end is not part of this build yet", file=sys.stderr)
    return 2
