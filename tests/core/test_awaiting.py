"""Waiting on several things at once: results in order, one wait, every one ended before an error is raised."""

from __future__ import annotations

import asyncio

import pytest

from core.awaiting import at_once, each_of
from core.text import char_classes, estimate_tokens


async def _after(seconds: float, value: object, ended: list[object]) -> object:
    await asyncio.sleep(seconds)
    ended.append(value)
    if isinstance(value, Exception):
        raise value
    return value


async def test_results_come_in_order_from_one_wait() -> None:
    ended: list[object] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = await at_once(_after(0.2, "a", ended), _after(0.1, 2, ended), _after(0.15, None, ended))
    assert got == ("a", 2, None)
    assert loop.time() - started < 0.35  # together, not 0.45 one after another
    assert await each_of(_after(0.01 * (3 - i), i, ended) for i in range(3)) == [0, 1, 2]
    assert await each_of([]) == []


async def test_an_error_is_raised_once_every_one_has_ended() -> None:
    ended: list[object] = []
    boom = ValueError("store away")
    with pytest.raises(ValueError, match="store away"):
        await at_once(_after(0.01, boom, ended), _after(0.1, "slow", ended))
    assert "slow" in ended  # not left running unobserved


def test_token_counts_of_mixed_text() -> None:
    assert char_classes("") == (0, 0)
    assert char_classes("plain ascii") == (0, 11)
    assert char_classes("孙悟空说：hello 花果山") == (7, 7)
    assert char_classes("ひらがな and カタカナ") == (8, 5)
    assert estimate_tokens("孙悟空说：hello 花果山") == 7 + 2
