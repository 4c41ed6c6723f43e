"""Broken model output that must never be shown: loops, runs of one mark, the wrong language, overruns,
and copies of the length hint the prompt ends with.

`DefectScan` reads a reply as it streams. The reply only grows, so each scan reads only what is new
(plus a pending stretch at the end): a whole reply costs time linear in its length. Besides the first
defect it reports `safe`, the point before which no defect can still begin, so a stream never shows
the start of something it will have to take back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["loop", "symbols", "language", "overrun", "prompt"]
KINDS: tuple[Kind, ...] = ("loop", "symbols", "language", "overrun", "prompt")

LOOP_CJK = 8  # a span this long (mostly Chinese/Japanese) seen three times is a loop
LOOP_OTHER = 20  # Latin text repeats short spans naturally ("Lawrence", " the wolf"): a longer span
LOOP_TIMES = 3
HINT_BACK = 100  # a copied hint is this long at most: each scan looks this far back for one
RUN = 6  # the same punctuation mark or symbol this many times ("；；；；；；", "!!!!!!")
FOREIGN_LATIN = 24  # letters in a stretch of Latin words in a Chinese reply (names and quoted words excused)
FOREIGN_CJK = 8  # Chinese characters in a stretch inside an English reply
FOREIGN_SHORT_LATIN = 6  # a whole reply mostly in Latin letters, this many or more, in a Chinese conversation
FOREIGN_SHORT_CJK = 2  # a whole reply mostly in Chinese characters, this many or more, in an English one

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_IS_CJK = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_LATIN_LETTER = re.compile("[A-Za-z]")
_RUNS = re.compile(r"([^\w\s])(?:\s*\1){" + str(RUN - 1) + ",}")
_TAIL_RUN = re.compile(r"([^\w\s])(?:\s*\1)*\s*\Z")
_LATIN = re.compile(r"[A-Za-z][\w'’-]*(?:[\s,.;:!?\"()/&-]+[A-Za-z0-9][\w'’-]*)*")
_HAN = re.compile(f"[{_CJK}](?:[{_CJK}\\s，。！？、；：“”‘’（）《》…—·]*[{_CJK}])?")
_GLUE = " \t\n,.;:!?\"()/&-，。！？、；：“”‘’（）《》…—·"  # what may join the words of one stretch
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
# the length hint's own words (persona.prompt.length_hint): too short for the leak check, never the character's
_HINT = re.compile(
    r"[一两三四]句话即可|用中文回复|(?:最多|通常)\s*\d+\s*字|\d+\s*字左右|[(（][^()（）\n]{0,20}(?:[一两三四]+|\d+)句话[^()（）\n]{0,10}[)）]"
    r"|(?i:reply in english|keep it to (?:one|two|three)"  # and its variants: "(Not in English, one sentence.)"
    r"|[(（][^()（）\n]{0,40}\b(?:one|two|three|four|\d+)(?: or (?:two|three|four|\d+))? sentences?\b[^()（）\n]{0,20}[)）])"
)
# each copy of the hint ends with one of these within its last _HINT_TAIL characters
_HINT_WORDS = ("即可", "回复", "字", "左右", ")", "）", "english", "t to ")
_HINT_TAIL = 12
# code and markup are not language: `inline code`, and CQ codes as a model may write them ("[CQ:at,qq=all]")
_CODE = re.compile(r"`[^`\n]{0,200}`|\[CQ:[^\]\n]{0,200}\]")


@dataclass(frozen=True, slots=True)
class Defect:
    """What is wrong and where in the raw reply the broken part begins (the clean part ends)."""

    kind: Kind
    at: int


def language_of(text: str, default: str) -> str:
    """"zh" or "en": the message's script when it clearly has one, else `default` (the card's)."""
    cjk = len(_IS_CJK.findall(text))
    latin = sum(len(w) for w in _WORD.findall(text))
    if cjk >= 2 and cjk * 3 >= latin:
        return "zh"
    if latin >= 8 and latin > cjk * 3:
        return "en"
    return "en" if default.startswith("en") else "zh"


def conversation_language(text: str, said: Sequence[str], unprompted: bool, default: str) -> str:
    """The language a reply should be in: the message's, or for a line the character starts on its
    own (whose text is the bot's nudge, in the card's language) the last thing a person said."""
    if unprompted:
        text = next((t for t in reversed(said) if t.strip()), "")
    return language_of(text, default)


def known_words(texts: Iterable[str]) -> frozenset[str]:
    """Words that may appear in a reply in the other language: names, and words the user used (Latin
    words lowercased, for a Chinese reply; runs of Chinese characters, for an English one)."""
    texts = list(texts)
    return frozenset([w.lower() for t in texts for w in _WORD.findall(t)] + [r for t in texts for r in _CJK_RUN.findall(t)])


class DefectScan:
    """Follows one growing reply; `scan` returns its first defect, or None so far."""

    def __init__(self, language: str, max_chars: int, known: frozenset[str] = frozenset()):
        self.language = "en" if language.startswith("en") else "zh"
        self.max_chars = max_chars
        self.known = known
        self.safe = 0  # raw characters before which nothing can turn out broken
        self.defect: Defect | None = None
        self._seen: set[str] = set()  # every span cut so far
        self._grams: dict[str, list[int]] = {}  # span -> [times seen apart, last start, second start]
        self._gram_at = 0  # next start position of a span to count
        self._run_at = 0  # where the run search starts again
        self._stretch_at = 0  # where the foreign-stretch search starts again
        self._hint_at = 0  # where the hint search starts again
        self._loop_hold = -1  # start of the second sighting of some span (a loop may be coming)

    def scan(self, raw: str, final: bool = False) -> Defect | None:
        """The first defect in `raw` (which only ever grows between calls)."""
        if self.defect is not None:
            return self.defect
        found = [d for d in (self._loops(raw, final), self._runs(raw, final), self._foreign(raw, final)) if d]
        hint = self._hint(raw)
        if hint is not None:
            found.append(hint)
        if len(raw) > self.max_chars:
            found.append(Defect("overrun", self.max_chars))
        if final and not found:
            found += [d for d in (self._mostly_foreign(raw),) if d]
        if found:
            self.defect = min(found, key=lambda d: d.at)
        return self.defect

    def _loops(self, raw: str, final: bool) -> Defect | None:
        """A span seen for the third time, apart from its earlier sightings (the loop starts at the second).

        The new spans are cut and compared by the interpreter's own machinery (list, set and counter
        operations); only spans seen before, or twice among the new ones, are followed one by one.
        """
        start = self._gram_at
        end = len(raw) if final else len(raw) - LOOP_OTHER + 1
        if start >= end:
            return None
        grams: list[str] = []
        at = start
        for m in _CJK_RUN.finditer(raw, start, end):  # a span is 8 characters from a Chinese one, else 20
            grams += [raw[i : i + LOOP_OTHER] for i in range(at, m.start())]
            grams += [raw[i : i + LOOP_CJK] for i in range(m.start(), m.end())]
            at = m.end()
        grams += [raw[i : i + LOOP_OTHER] for i in range(at, end)]
        while final and grams and len(grams[-1]) < (LOOP_CJK if _IS_CJK.match(raw, start + len(grams) - 1)
                                                    else LOOP_OTHER):
            grams.pop()  # cut short by the end of the reply: no span
        self._gram_at = end
        unique = set(grams)
        suspects = unique & self._seen
        if len(unique) < len(grams):
            suspects.update(g for g, n in Counter(grams).items() if n > 1)
        self._seen |= unique
        suspects = {g for g in suspects if not g.isspace()}
        return self._follow(raw, grams, start, suspects) if suspects else None

    def _follow(self, raw: str, grams: list[str], start: int, suspects: set[str]) -> Defect | None:
        """Count the sightings of spans that may repeat, in order, each apart from the last."""
        state = self._grams
        for k in [k for k, g in enumerate(grams) if g in suspects]:
            gram, i = grams[k], start + k
            seen = state.get(gram)
            if seen is None:
                first = raw.find(gram)  # its first sighting: every earlier start was cut into a span
                state[gram] = seen = [1, first, -1]
                if first == i:
                    continue
            if i >= seen[1] + len(gram):  # apart, not overlapping the last sighting
                seen[0] += 1
                seen[1] = i
                if seen[0] == 2:
                    seen[2] = i
                    self._loop_hold = i if self._loop_hold < 0 else min(self._loop_hold, i)
                elif seen[0] >= LOOP_TIMES:
                    self._gram_at = i + 1
                    return Defect("loop", seen[2])
        return None

    def _hint(self, raw: str) -> Defect | None:
        """A copy of the length hint that ends in the new text: looked for only when the new text holds
        one of the few words every such copy ends with (plain substring tests, no regex over the text)."""
        new = raw[max(0, self._hint_at - _HINT_TAIL) :]
        self._hint_at = len(raw)
        lowered = new.lower()
        if not any(word in lowered for word in _HINT_WORDS):
            return None
        hint = _HINT.search(raw, max(0, len(raw) - len(new) - HINT_BACK))
        return Defect("prompt", hint.start()) if hint else None

    def _runs(self, raw: str, final: bool) -> Defect | None:
        for m in _RUNS.finditer(raw, self._run_at):
            if m.group(1) != "." or len(m.group(0).replace(" ", "")) > RUN:  # "......" is an ellipsis
                return Defect("symbols", m.start())
        tail = _TAIL_RUN.search(raw, self._run_at)
        self._run_at = tail.start() if tail and not final else len(raw)
        return None

    def _foreign(self, raw: str, final: bool) -> Defect | None:
        pattern, limit = (_LATIN, FOREIGN_LATIN) if self.language == "zh" else (_HAN, FOREIGN_CJK)
        pending = len(raw)
        for m in pattern.finditer(raw, self._stretch_at):
            if self._weight(m.group(0)) >= limit:
                return Defect("language", m.start())
            if not final and not raw[m.end() :].strip(_GLUE):  # the stretch may go on
                pending = m.start()
        self._stretch_at = pending
        return None

    def _weight(self, stretch: str) -> int:
        """Letters (or Chinese characters) of a stretch that count against the conversation's language."""
        if self.language == "en":
            return len(_IS_CJK.findall(stretch))
        stretch = _CODE.sub("", stretch)
        return sum(len(w) for w in _WORD.findall(stretch) if w.lower() not in self.known)

    def _mostly_foreign(self, raw: str) -> Defect | None:
        """A short reply all in the other language (each stretch alone was short)."""
        if (_LATIN_LETTER if self.language == "zh" else _IS_CJK).search(raw) is None:
            return None  # not one letter of the other script
        if self.language == "zh":
            cjk = len(_IS_CJK.findall(raw))
            latin = sum(len(w) for w in _WORD.findall(_CODE.sub("", raw)) if w.lower() not in self.known)
            bad = latin >= FOREIGN_SHORT_LATIN and latin > cjk * 2
        else:
            cjk = sum(len(r) for r in _CJK_RUN.findall(raw) if r not in self.known)  # "I'm 赫萝." names her
            latin = sum(len(w) for w in _WORD.findall(raw))
            bad = cjk >= FOREIGN_SHORT_CJK and cjk * 2 > latin
        return Defect("language", 0) if bad else None

    def recheck(self, kept: str) -> Defect | None:
        """The defect in the clean part kept before a defect, read whole: a short reply all in the other
        language (the scan already found nothing else before the first defect)."""
        return self._mostly_foreign(kept)

    def hold(self, raw: str) -> int:
        """Raw characters that may be shown now: before any run, stretch or repeat still in the making."""
        limits = [len(raw), self._gram_at, self._run_at, self._stretch_at, self.max_chars]
        if self._loop_hold >= 0:
            limits.append(self._loop_hold)
        if self.defect is not None:
            limits.append(self.defect.at)
        self.safe = max(0, min(limits))
        return self.safe
