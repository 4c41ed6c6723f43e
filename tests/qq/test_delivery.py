"""Cutting replies for QQ, the forward decision and the random delay (pure parts of delivery)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import QQConfig

# plugin modules are imported only after nonebot has loaded the plugin (importing them first would
# import the package outside nonebot's loader)
pytestmark = pytest.mark.usefixtures("roleplay_plugin")


def _split(text: str, limit: int) -> list[str]:
    from bot.outbound.split import split_text

    return split_text(text, limit)


def _plan(text: str, cfg: QQConfig) -> Any:
    from plugins.roleplay.delivery import plan

    return plan(text, cfg)


@given(st.text(alphabet=st.sampled_from(list("甲乙 丙。！？.\nab")), max_size=400), st.integers(5, 80))
def test_chunks_fit_the_limit_and_keep_every_visible_character(text: str, limit: int) -> None:
    chunks = _split(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert re.sub(r"\s", "", "".join(chunks)) == re.sub(r"\s", "", text)


def test_chunks_break_at_paragraphs_then_sentences() -> None:
    assert _split("第一段。\n\n第二段。", 6) == ["第一段。", "第二段。"]
    assert _split("一二三。四五六。七八九。", 8) == ["一二三。四五六。", "七八九。"]
    assert _split("短", 8) == ["短"]
    assert _split("  \n ", 8) == []


def test_forward_only_past_the_threshold_and_only_for_several_pieces() -> None:
    cfg = QQConfig(message_chars=60, forward_over_chars=100)
    assert _plan("甲" * 90, cfg).kind == "messages"
    long = ("甲" * 55 + "。") * 3
    assert _plan(long, cfg).kind == "forward"
    assert len(_plan(long, cfg).chunks) == 3
    assert _plan(long, QQConfig(message_chars=60, forward_over_chars=0)).kind == "messages"


def test_a_wire_without_merged_forward_gets_plain_messages() -> None:
    from plugins.roleplay.delivery import plan

    long = ("甲" * 55 + "。") * 3
    cut = plan(long, QQConfig(message_chars=60, forward_over_chars=100), forward=False)  # the official API
    assert cut.kind == "messages" and len(cut.chunks) == 3


async def test_delay_is_a_random_share_of_the_maximum() -> None:
    from plugins.roleplay.delivery import pause

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    assert await pause(QQConfig(reply_delay_max=2.0), lambda: 0.25, sleep) == 0.5
    assert await pause(QQConfig(), lambda: 0.25, sleep) == 0.0
    assert slept == [0.5]
