"""Splitting long replies: Discord's limit, nothing lost, code fences balanced in every part."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.outbound.split import split_text

WS = re.compile(r"\s+")
FENCE_LINE = re.compile(r"^[ \t]*```.*$", re.MULTILINE)


def fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.lstrip().startswith("```"))


def squashed(text: str) -> str:
    """Text without fence lines and whitespace: what must survive the split unchanged."""
    return WS.sub("", FENCE_LINE.sub("", text))


words = st.text(alphabet=st.sampled_from("abcdefg咱汝狼苹果 "), min_size=1, max_size=40)
sentence = st.builds(lambda w, end: w.strip() + end, words, st.sampled_from([". ", "! ", "? ", "。", "！", " "]))
paragraph = st.lists(sentence, min_size=1, max_size=40).map("".join)
code = st.builds(
    lambda lang, lines: f"\n```{lang}\n" + "\n".join(lines) + "\n```\n",
    st.sampled_from(["", "python", "toml"]),
    st.lists(st.text(alphabet=st.sampled_from("xyz=()  \t"), max_size=120), min_size=1, max_size=60),
)
long_word = st.text(alphabet=st.sampled_from("abc"), min_size=1500, max_size=5000)
block = st.one_of(paragraph, paragraph, code, long_word)
document = st.lists(block, min_size=1, max_size=30).map(
    lambda blocks: "".join(b + sep for b, sep in zip(blocks, ["\n\n", "\n", " "] * 20, strict=False))
)


@settings(max_examples=100, deadline=None)
@given(document, st.sampled_from([2000, 300]))
def test_split_keeps_limit_content_and_fences(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    # parts are separate messages: a reopened fence starts its own line
    assert squashed("\n".join(parts)) == squashed(text)
    for p in parts:
        assert fence_lines(p) % 2 == 0, p


def test_short_text_is_one_part() -> None:
    assert split_text("  hello  ") == ["hello"]
    assert split_text("") == []


def test_cuts_at_paragraphs_first() -> None:
    first, second = "a" * 1200, "b" * 1200
    assert split_text(f"{first}\n\n{second}") == [first, second]


def test_cuts_at_sentence_ends_in_chinese() -> None:
    text = "咱是贤狼赫萝。" * 400  # 2,800 characters, no spaces or newlines
    parts = split_text(text)
    assert len(parts) == 2 and all(p.endswith("。") for p in parts)


def test_code_fence_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"    x = {i}" for i in range(400))
    parts = split_text(f"Look:\n```python\n{code}\n```\ndone.")
    assert len(parts) >= 2
    assert parts[0].endswith("\n```")
    assert parts[1].startswith("```python\n    x =")  # indentation inside the fence survives
    assert parts[-1].endswith("done.")
