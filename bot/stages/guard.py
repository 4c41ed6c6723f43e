"""Stage 2, guard: duplicates, rate limits, input cleaning."""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from bot.config import BotConfig
from bot.exchange import Exchange
from memory.store import ConversationStore

log = logging.getLogger(__name__)

_INVISIBLE = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def clean_input(text: str, limit: int) -> str:
    """Drop control and invisible characters, collapse blank runs, cap the length."""
    text = _INVISIBLE.sub("", text).replace("\r\n", "\n")
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "……"


class Guard:
    """Drops floods (the terminal is never limited); hands on a cleaned message."""

    def __init__(
        self, cfg: BotConfig, store: ConversationStore, clock: Callable[[], float] = time.monotonic
    ):
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self._recent: dict[str, deque[float]] = {}

    async def __call__(self, ex: Exchange) -> Exchange | None:
        """None for rate-limited or empty messages."""
        msg = ex.incoming
        if msg.platform != "terminal" and not self._allow(f"{msg.platform}:{msg.user_id}"):
            log.info("rate limit: %s:%s", msg.platform, msg.user_id)
            return None
        text = clean_input(ex.text, self.cfg.max_input_chars)
        if not text:
            return None
        return replace(ex, text=text)

    def _allow(self, who: str) -> bool:
        now = self.clock()
        if len(self._recent) > 10_000:  # forget users who have been quiet for a minute
            self._recent = {k: v for k, v in self._recent.items() if v and now - v[-1] < 60.0}
        stamps = self._recent.setdefault(who, deque())
        while stamps and now - stamps[0] >= 60.0:
            stamps.popleft()
        if len(stamps) >= self.cfg.rate_limit_per_minute:
            return False
        stamps.append(now)
        return True
