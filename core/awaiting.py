"""Waiting on several things at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def at_once(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...
@overload
async def at_once(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...
async def at_once(*aws: Awaitable[Any]) -> tuple[Any, ...]:
    """The results of several awaitables run together (one wait, not one each); every one ends before the
    first error, if any, is raised, so nothing is left running unobserved."""
    return tuple(await _together(aws))


async def each_of(aws: Iterable[Awaitable[A]]) -> list[A]:
    """The results of awaitables of one kind, run together, in order; errors as with `at_once`."""
    return await _together(aws)


async def _together(aws: Iterable[Awaitable[Any]]) -> list[Any]:
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
