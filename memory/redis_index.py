"""The list of sessions on Redis (`<prefix>:sessions`, `<prefix>:turn_count`), and filling it in for
conversations stored before it existed.

Every append notes its session in a sorted set scored by the time of its last activity, and counts
its turns; the web console lists conversations from that set. Conversations written by an older
version were never noted: at start-up `backfill` scans the `:seq` keys once (a marker key makes
later starts skip it) and adds each missing session with the time of its newest stored turn,
counting the turns it ever numbered. A session a newer process already noted is left as it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from memory.turns import parse_session

log = logging.getLogger(__name__)
BATCH = 1000  # sessions read and written per round trip


async def backfill(r: aioredis.Redis, prefix: str, wall: Callable[[], float]) -> int:
    """Add the sessions missing from the index (once per namespace); how many were added."""
    marker = f"{prefix}:sessions_indexed"
    if await r.exists(marker):
        return 0
    added = 0
    names: list[str] = []
    async for name in r.scan_iter(match=f"{glob_escape(prefix)}:s:*:seq", count=BATCH):
        names.append(str(name))
        if len(names) >= BATCH:
            added += await _index(r, prefix, names)
            names = []
    if names:
        added += await _index(r, prefix, names)
    await r.set(marker, json.dumps({"added": added, "at": wall()}))
    if added:
        log.info("memory: %d conversations stored before the session list existed were added to it", added)
    return added


async def _index(r: aioredis.Redis, prefix: str, names: list[str]) -> int:
    """Note these sessions (`...:seq` key names) unless noted already; how many were new."""
    heads = [name[len(prefix) + 3 : -len(":seq")] for name in names]
    keys = [(head, key) for head in heads if (key := parse_session(head)) is not None]
    async with r.pipeline(transaction=False) as pipe:
        for head, _ in keys:
            pipe.get(f"{prefix}:s:{head}:seq")
            pipe.lindex(f"{prefix}:s:{head}:turns", -1)
        raw = await pipe.execute()
    async with r.pipeline(transaction=False) as pipe:
        for i, (head, _) in enumerate(keys):
            pipe.zadd(f"{prefix}:sessions", {head: _active(raw[2 * i + 1])}, nx=True)
        fresh = await pipe.execute()
    counted = sum(int(raw[2 * i] or 0) for i, new in enumerate(fresh) if new)
    if counted:
        await r.incrby(f"{prefix}:turn_count", counted)
    return sum(1 for new in fresh if new)


def _active(entry: object) -> float:
    """When a session was last active: its newest stored turn's time (0 when it keeps none)."""
    if not isinstance(entry, str):
        return 0.0
    try:
        return float(json.loads(entry.partition("|")[2]).get("at") or 0.0)
    except (ValueError, AttributeError):
        return 0.0


def glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern (also the store's search)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
