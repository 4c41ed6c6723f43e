"""Human pacing: a reply cut at sentence ends into a few chat-sized messages, each after a typing delay.

The cut never falls inside a sentence, a code fence, a quoted line (">") or a 「」/“”/"" quotation.
Platform size limits are a separate, later cut (bot/outbound/split.py).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.config.pacing import PacingConfig

Sleep = Callable[[float], Awaitable[None]]

FENCE = "```"
ENDS = "。！？!?…"  # a sentence ends here wherever it is ("." only before a space, a closing quote or the end)
TRAIL = ENDS + ".~～"  # more of the same ending ("……", "?!", "...")
OPENERS = {"“": "”", "「": "」", "『": "』", "《": "》", "（": "）"}  # not ASCII "(": ":(" never closes
CLOSERS = {v: k for k, v in OPENERS.items()}
QUOTE_ENDS = '"' + "".join(CLOSERS)  # "Go." ends a sentence though no space follows the "."
# about 2.5 Latin characters carry what one CJK character does, and take about as long to type
NARROW_WEIGHT = 0.4


def split_reply(text: str, max_messages: int = 3, split_over_chars: int = 30) -> list[str]:
    """The reply as 1..max_messages parts of whole sentences, as even in length as the sentences allow.

    Shorter than `split_over_chars`, or a single sentence: one part.
    """
    text = text.strip()
    if not text:
        return []
    if max_messages <= 1 or len(text) < split_over_chars:
        return [text]
    spans = _units(text)
    count = min(max_messages, len(spans))
    if count <= 1:
        return [text]
    ends = [end for _, end in spans]
    cuts: list[int] = []  # index of the last unit of each part but the last
    for i in range(1, count):
        target = ends[-1] * i / count
        low = cuts[-1] + 1 if cuts else 0
        high = len(spans) - 1 - (count - i)  # leave a unit for each part still to come
        best = min(range(low, high + 1), key=lambda u: abs(ends[u] - target))
        cuts.append(best)
    starts = [0, *(c + 1 for c in cuts)]
    stops = [*cuts, len(spans) - 1]
    return [text[spans[a][0] : spans[b][1]].strip() for a, b in zip(starts, stops, strict=True)]


def typing_weight(text: str) -> float:
    """Characters as typed: CJK and other wide characters count 1, the rest NARROW_WEIGHT."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else NARROW_WEIGHT for c in text if not c.isspace())


def typing_seconds(text: str, cfg: PacingConfig) -> float:
    """clamp(weight / chars_per_second, min_delay_seconds, max_delay_seconds)."""
    seconds = typing_weight(text) / cfg.chars_per_second
    return min(cfg.max_delay_seconds, max(cfg.min_delay_seconds, seconds))


@dataclass(frozen=True, slots=True)
class Pacing:
    """One platform's pacing: the config and the (injected) way to wait."""

    cfg: PacingConfig
    sleep: Sleep = asyncio.sleep

    @property
    def on(self) -> bool:
        """Whether replies are split and delayed at all."""
        return self.cfg.enabled

    def parts(self, text: str) -> list[str]:
        """The reply's parts (the whole text as one when pacing is off)."""
        if not self.on:
            return [text.strip()] if text.strip() else []
        return split_reply(text, self.cfg.max_messages, self.cfg.split_over_chars)

    async def wait(self, part: str, spent: float = 0.0) -> float:
        """Wait as long as typing `part` takes, less `spent` seconds already waited; the seconds slept."""
        if not self.on:
            return 0.0
        seconds = max(0.0, typing_seconds(part, self.cfg) - max(0.0, spent))
        if seconds > 0:
            await self.sleep(seconds)
        return seconds

    async def send(
        self,
        parts: Sequence[str],
        send: Callable[[int, str], Awaitable[object]],
        *,
        spent: float = 0.0,
        typing: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Each part after its typing delay, in order; the first one's delay counts `spent` (generating).

        `typing`, when given, is called before each wait after the first part (platforms hide the
        typing indicator once a message is posted).
        """
        for i, part in enumerate(parts):
            if i and typing is not None and self.on:
                await typing()
            await self.wait(part, spent if i == 0 else 0.0)
            await send(i, part)


def _units(text: str) -> list[tuple[int, int]]:
    """Spans of the pieces a cut may fall between: sentences, whole code fences, whole ">" blocks."""
    spans: list[tuple[int, int]] = []
    start = pos = 0
    quotes: list[str] = []  # open quotations (their closing marks)
    line_start = True

    def close(end: int) -> None:
        nonlocal start
        if text[start:end].strip():
            spans.append((start, end))
        start = end

    while pos < len(text):
        if line_start:
            line_end = _line_end(text, pos)
            line = text[pos:line_end].lstrip()
            if line.startswith(FENCE) or line.startswith(">"):
                close(pos)
                end = _fence_end(text, line_end) if line.startswith(FENCE) else _quote_block_end(text, pos)
                close(end)
                pos, quotes, line_start = end, [], True
                continue
        char = text[pos]
        pos += 1
        line_start = char == "\n"
        if char == "\n":
            if text.startswith("\n", pos):
                quotes = []  # a quotation left open does not run past a paragraph
            if not quotes:
                close(pos)
            continue
        if char == '"':
            if quotes and quotes[-1] == '"':
                quotes.pop()
            else:
                quotes.append('"')
        elif char in OPENERS:
            quotes.append(OPENERS[char])
        elif char in CLOSERS and quotes and quotes[-1] == char:
            quotes.pop()
        elif char in ENDS or (char == "." and (pos == len(text) or text[pos].isspace() or text[pos] in QUOTE_ENDS)):
            pos = _trail_end(text, pos, quotes)
            if not quotes:
                close(pos)
    close(len(text))
    return spans


def _trail_end(text: str, pos: int, quotes: list[str]) -> int:
    """Past the rest of a sentence ending: more end marks and the quotation marks it closes."""
    while pos < len(text):
        char = text[pos]
        if char in TRAIL:
            pos += 1
        elif quotes and char == quotes[-1]:
            quotes.pop()
            pos += 1
        else:
            break
    return pos


def _line_end(text: str, pos: int) -> int:
    at = text.find("\n", pos)
    return len(text) if at < 0 else at


def _fence_end(text: str, after_open: int) -> int:
    """The end of the line that closes the fence opened before `after_open` (the text's end if none)."""
    pos = after_open + 1
    while pos < len(text):
        end = _line_end(text, pos)
        if text[pos:end].lstrip().startswith(FENCE):
            return end
        pos = end + 1
    return len(text)


def _quote_block_end(text: str, pos: int) -> int:
    """The end of the run of ">" lines starting at `pos`."""
    end = pos
    while pos < len(text) and text[pos:_line_end(text, pos)].lstrip().startswith(">"):
        end = _line_end(text, pos)
        pos = end + 1
    return end
