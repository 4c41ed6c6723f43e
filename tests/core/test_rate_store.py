"""rate_hit: one sliding window per key, atomic, shared by every process on the same store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from memory.redis_store import RedisStore
from memory.sqlite_store import SQLiteStore
from memory.store import ConversationStore

Opener = Callable[[], ConversationStore]


@pytest.fixture(params=["redis", "sqlite"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str) -> AsyncIterator[Opener]:
    """Opens stores of the backend under test; each one is a separate client of the same data."""
    opened: list[ConversationStore] = []

    def make() -> ConversationStore:
        store: ConversationStore
        if request.param == "redis":
            store = RedisStore(redis_url, prefix=redis_prefix)
        else:
            store = SQLiteStore(tmp_path / "m.sqlite3")
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_hits_past_the_limit_are_refused_per_key(opener: Opener) -> None:
    store = opener()
    assert [await store.rate_hit("qq:1", 60, 3) for _ in range(5)] == [True, True, True, False, False]
    assert await store.rate_hit("qq:2", 60, 3)
    assert await store.rate_hit("discord:1", 60, 3)


async def test_the_window_slides(opener: Opener) -> None:
    store = opener()
    assert await store.rate_hit("k", 1.0, 2)
    await asyncio.sleep(0.5)
    assert await store.rate_hit("k", 1.0, 2)
    assert not await store.rate_hit("k", 1.0, 2)
    await asyncio.sleep(0.6)  # the first hit left the window, the second is still in it
    assert await store.rate_hit("k", 1.0, 2)
    assert not await store.rate_hit("k", 1.0, 2)


async def test_refused_hits_do_not_count(opener: Opener) -> None:
    store = opener()
    assert await store.rate_hit("k", 0.4, 1)
    for _ in range(5):
        assert not await store.rate_hit("k", 0.4, 1)
    await asyncio.sleep(0.45)
    assert await store.rate_hit("k", 0.4, 1)


async def test_processes_share_one_limit_and_concurrent_hits_are_atomic(opener: Opener) -> None:
    first, second = opener(), opener()
    results = await asyncio.gather(*(store.rate_hit("busy", 60, 7) for _ in range(15) for store in (first, second)))
    assert sum(results) == 7
    assert not await first.rate_hit("busy", 60, 7) and not await second.rate_hit("busy", 60, 7)
