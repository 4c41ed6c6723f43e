"""How a reply is cut and timed on QQ: delay, paced parts or merged-forward, the wait for the voice clip."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.outbound.pacing import Pacing, Sleep
from bot.outbound.split import split_text
from core.config import QQConfig
from core.messages import Clip
from core.outlet import ClipTask

log = logging.getLogger(__name__)
# messages, or nodes of one merged-forward message, for one reply: QQ bounds a forward's nodes, and
# a flood of messages is risk-controlled; replies are capped long before this in practice
MAX_PARTS = 40


@dataclass(frozen=True, slots=True)
class Plan:
    """The text of a reply, cut for QQ: several plain messages or one merged-forward message."""

    kind: Literal["messages", "forward"]
    chunks: tuple[str, ...]


def plan(text: str, cfg: QQConfig, pacing: Pacing | None = None, forward: bool = True) -> Plan:
    """Past `forward_over_chars` (when > 0 and `forward`) a merged-forward message, else `pieces`."""
    chunks = bounded(tuple(split_text(text, cfg.message_chars)), cfg.message_chars)
    if forward and cfg.forward_over_chars and len(text) > cfg.forward_over_chars and len(chunks) > 1:
        return Plan("forward", chunks)
    return Plan("messages", pieces(text, cfg, pacing) if pacing is not None else chunks)


def pieces(text: str, cfg: QQConfig, pacing: Pacing) -> tuple[str, ...]:
    """The paced parts of a reply, each cut again to `message_chars` where it is longer."""
    parts = tuple(chunk for part in pacing.parts(text) for chunk in split_text(part, cfg.message_chars))
    return bounded(parts, cfg.message_chars)


def bounded(chunks: tuple[str, ...], limit: int) -> tuple[str, ...]:
    """At most MAX_PARTS chunks; the last one kept ends in "…" where the rest was left out."""
    if len(chunks) <= MAX_PARTS:
        return chunks
    log.warning("a reply of %d parts was cut to %d", len(chunks), MAX_PARTS)
    last = chunks[MAX_PARTS - 1]
    return (*chunks[: MAX_PARTS - 1], (last if len(last) < limit else last[: limit - 1]).rstrip() + "…")


def waited(sent_at: object, wall: Callable[[], float]) -> float:
    """Seconds since a platform timestamp (epoch seconds, a datetime or ISO 8601 text); 0 when unknown."""
    if isinstance(sent_at, str):
        try:
            sent_at = datetime.fromisoformat(sent_at)
        except ValueError:
            return 0.0
    if isinstance(sent_at, datetime):
        sent_at = sent_at.timestamp()
    if isinstance(sent_at, int | float) and not isinstance(sent_at, bool) and sent_at > 0:
        return max(0.0, wall() - float(sent_at))
    return 0.0


async def pause(cfg: QQConfig, chance: Callable[[], float], sleep: Sleep = asyncio.sleep) -> float:
    """The optional random delay before a reply (QQ risk control); returns the seconds slept."""
    if cfg.reply_delay_max <= 0:
        return 0.0
    seconds = chance() * cfg.reply_delay_max
    await sleep(seconds)
    return seconds


async def clip_of(clip: ClipTask, cfg: QQConfig) -> Clip | None:
    """The reply's voice clip, if it finishes in time."""
    try:
        return await asyncio.wait_for(asyncio.shield(clip), cfg.voice_wait_seconds)
    except (TimeoutError, asyncio.CancelledError):
        log.warning("voice clip not ready after %.0f s; sent text only", cfg.voice_wait_seconds)
        return None
