"""How one Reply goes out on QQ: delay, split or merged-forward, then the voice clip."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.config import QQConfig
from bot.messages import Clip, Reply
from plugins.roleplay.chunks import split_text

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Plan:
    """The text of a reply, cut for QQ: several plain messages or one merged-forward message."""

    kind: Literal["messages", "forward"]
    chunks: tuple[str, ...]


def plan(text: str, cfg: QQConfig) -> Plan:
    """Past `forward_over_chars` (when > 0) a merged-forward message, else `message_chars` pieces."""
    chunks = tuple(split_text(text, cfg.message_chars))
    if cfg.forward_over_chars and len(text) > cfg.forward_over_chars and len(chunks) > 1:
        return Plan("forward", chunks)
    return Plan("messages", chunks)


async def pause(cfg: QQConfig, chance: Callable[[], float], sleep: Sleep = asyncio.sleep) -> float:
    """The optional random delay before a reply (QQ risk control); returns the seconds slept."""
    if cfg.reply_delay_max <= 0:
        return 0.0
    seconds = chance() * cfg.reply_delay_max
    await sleep(seconds)
    return seconds


async def clip_of(reply: Reply, cfg: QQConfig) -> Clip | None:
    """The reply's voice clip, if one was asked for and it finishes in time."""
    if reply.voice is None:
        return None
    try:
        return await asyncio.wait_for(asyncio.shield(reply.voice), cfg.voice_wait_seconds)
    except (TimeoutError, asyncio.CancelledError):
        log.warning("voice clip not ready after %.0f s; sent text only", cfg.voice_wait_seconds)
        return None
