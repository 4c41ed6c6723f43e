"""Retrying Redis calls through a restart or a busy pool, for a bounded time, then one StoreError."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.stores import StoreError

log = logging.getLogger(__name__)

# Worth another try: refused or reset connections, timeouts, a server still loading its data
# (BusyLoadingError) and a pool with no free connection are all ConnectionError or TimeoutError.
TRANSIENT: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
FIRST_DELAY, MAX_DELAY = 0.05, 0.5


class Retrying(Protocol):
    """What a retried method's object tells: its clock and how long to keep trying."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def retry_seconds(self) -> float: ...


S = TypeVar("S", bound=Retrying)
P = ParamSpec("P")
R = TypeVar("R")
Method = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]


def transient(what: str) -> Callable[[Method[S, P, R]], Method[S, P, R]]:
    """Retry the method on transient errors for the object's `retry_seconds`; then StoreError."""

    def wrap(method: Method[S, P, R]) -> Method[S, P, R]:
        @functools.wraps(method)
        async def call(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            deadline = self.clock() + self.retry_seconds
            delay = FIRST_DELAY
            while True:
                try:
                    return await method(self, *args, **kwargs)
                except TRANSIENT as exc:
                    left = deadline - self.clock()
                    if left <= 0:
                        raise StoreError(
                            f"redis {what} failed: {exc}; check that Redis runs at [memory] redis_url"
                        ) from exc
                    log.debug("redis %s: %s; trying again", what, exc)
                    await asyncio.sleep(min(delay, left))
                    delay = min(delay * 2, MAX_DELAY)
                except RedisError as exc:
                    raise StoreError(f"redis {what} failed: {exc}") from exc

        return call

    return wrap
