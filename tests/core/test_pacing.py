"""Human pacing, pure parts: where a reply is cut, how long each part types, the [pacing] section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.outbound.pacing import Pacing, split_reply, typing_seconds, typing_weight
from core.config import ConfigError, PacingConfig, load_config


def test_a_short_reply_stays_one_message() -> None:
    assert split_reply("咱在。汝呢？", 3, 30) == ["咱在。汝呢？"]
    assert split_reply("  \n ", 3, 0) == []


def test_sentences_are_grouped_into_at_most_max_messages_of_even_length() -> None:
    text = "嗯。咱今天去了镇上的集市。买了好多苹果，还有一小袋麦子。汝要不要尝尝看？"
    assert split_reply(text, 3, 0) == ["嗯。咱今天去了镇上的集市。", "买了好多苹果，还有一小袋麦子。", "汝要不要尝尝看？"]
    assert split_reply(text, 2, 0) == ["嗯。咱今天去了镇上的集市。", "买了好多苹果，还有一小袋麦子。汝要不要尝尝看？"]
    assert split_reply(text, 1, 0) == [text]


def test_english_sentence_ends_but_not_decimals() -> None:
    text = "Pi is about 3.14 and that is fine. Do you agree? I think so!"
    assert split_reply(text, 3, 0) == ["Pi is about 3.14 and that is fine.", "Do you agree?", "I think so!"]


def test_a_single_long_sentence_is_never_cut() -> None:
    text = "这是一句很长很长的话，中间有很多逗号，但是一直没有句号，所以它不能被切开" * 3
    assert split_reply(text, 3, 0) == [text]


def test_code_fences_stay_whole() -> None:
    fence = "```py\nprint('一。')\nprint('二。')\n```"
    parts = split_reply(f"看这段代码。\n{fence}\n这就是全部了。很简单吧？", 3, 0)
    assert fence in parts
    assert "看这段代码。" in parts[0]


def test_an_unclosed_fence_runs_to_the_end() -> None:
    parts = split_reply("先说一句。再说一句。\n```\n一。二。三。", 3, 0)
    assert parts[-1] == "```\n一。二。三。"


def test_quoted_lines_and_quotations_stay_whole() -> None:
    quote = "> 汝说过：一。\n> 二。三。"
    assert quote in split_reply(f"{quote}\n原来如此。咱明白了。汝说得对啊。", 3, 0)
    said = "他说：“走吧。别回头！”"
    parts = split_reply(f"{said}她点点头。然后他们离开了。", 3, 0)
    assert parts[0] == said
    assert split_reply("「一。二。三。」", 3, 0) == ["「一。二。三。」"]
    assert split_reply('She said "Go. Now. Please." Then she left.', 3, 0)[0] == 'She said "Go. Now. Please."'


def test_an_unclosed_quotation_does_not_run_past_its_paragraph() -> None:
    assert split_reply("他说：“走吧。\n\n好的。然后呢。", 3, 0) == ["他说：“走吧。", "好的。", "然后呢。"]


@given(st.text(alphabet=st.sampled_from(list("甲乙 。！？.!\n>`“”「」\"ab")), max_size=300), st.integers(1, 4))
def test_parts_keep_every_visible_character_in_order(text: str, most: int) -> None:
    parts = split_reply(text, most, 0)
    assert len(parts) <= most
    assert all(p and p == p.strip() for p in parts)
    assert re.sub(r"\s", "", "".join(parts)) == re.sub(r"\s", "", text)


def test_cjk_counts_more_than_latin_and_delays_are_clamped() -> None:
    cfg = PacingConfig(chars_per_second=10, min_delay_seconds=0.5, max_delay_seconds=2.0)
    assert typing_weight("咱在 ok") == pytest.approx(2 + 2 * 0.4)
    assert typing_seconds("嗯", cfg) == 0.5
    assert typing_seconds("咱" * 15, cfg) == pytest.approx(1.5)
    assert typing_seconds("咱" * 100, cfg) == 2.0


async def test_each_part_waits_its_time_and_the_first_counts_what_was_spent() -> None:
    slept: list[float] = []
    sent: list[tuple[int, str]] = []
    typing: list[int] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def send(i: int, part: str) -> None:
        sent.append((i, part))

    async def type_again() -> None:
        typing.append(len(sent))

    pacing = Pacing(PacingConfig(chars_per_second=10, min_delay_seconds=0.5, max_delay_seconds=2.0), sleep)
    await pacing.send(["咱" * 15, "嗯", "咱" * 30], send, spent=1.0, typing=type_again)
    assert slept == pytest.approx([0.5, 0.5, 2.0])
    assert [i for i, _ in sent] == [0, 1, 2]
    assert typing == [1, 2]  # shown again before each later part

    slept.clear()
    await pacing.send(["咱" * 15], send, spent=4.0)
    assert slept == []  # generating took longer than typing would: no wait at all


async def test_pacing_off_neither_cuts_nor_waits() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacing = Pacing(PacingConfig(enabled=False), sleep)
    assert pacing.parts("一。二。三。" * 20) == ["一。二。三。" * 20]
    assert await pacing.wait("咱" * 50) == 0.0
    assert slept == []


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[pacing]\nmax_messages = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[pacing\] max_messages: .*greater than or equal to 1"):
        load_config(path)
    path.write_text("[pacing]\nchars_per_second = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[pacing\] chars_per_second: .*greater than 0"):
        load_config(path)
    path.write_text("[pacing]\nmin_delay_seconds = 5\nmax_delay_seconds = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"min_delay_seconds \(5.0\) must not exceed max_delay_seconds \(1.0\)"):
        load_config(path)
    path.write_text("[pacing]\nchars_per_secnd = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[pacing\] chars_per_secnd: unknown key"):
        load_config(path)


def test_defaults() -> None:
    cfg = PacingConfig()
    assert (cfg.enabled, cfg.max_messages, cfg.chars_per_second) == (True, 3, 15.0)
    assert (cfg.min_delay_seconds, cfg.max_delay_seconds, cfg.split_over_chars) == (0.5, 4.0, 30)
