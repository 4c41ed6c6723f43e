"""What a model reply may show: no stretch of the hidden prompt, no echo, no invented speakers.

`ReplyCheck` follows a reply as it streams and releases only text that has passed every check,
so a leak is never shown, not even for a moment.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.checks.cleaning import clean_reply
from bot.checks.defects import Defect, DefectScan
from core.sanitize import clean_text
from core.text import grams_of, longest_shared_run, normalize
from persona.card import Persona
from persona.prompt import length_hint, system_prompt

_SENTENCE_END = re.compile(r"[。！？!?…~～]+[」』）)\"”]?|(?<![0-9A-Z])\.(?=\s|$)")


@dataclass(frozen=True)
class Tier:
    """Hidden texts sharing one threshold: runs of `cjk` CJK characters or `other` letters leak."""

    grams: frozenset[str]
    cjk: int
    other: int

    def leaked_by(self, text: str) -> bool:
        """True when `text` (normalized) shares a long enough run with these texts."""
        length, cjk = longest_shared_run(text, self.grams, min(self.cjk, self.other))  # shorter runs never leak
        return length >= (self.cjk if cjk * 2 >= length else self.other)


class Hidden:
    """Everything the model was told but must not say, per persona."""

    def __init__(self, persona: Persona):
        card = persona.card
        rules = [system_prompt(persona), persona.render(card.post_history_instructions),
                 *(length_hint(persona, group, lang) for group in (True, False) for lang in ("zh", "en"))]
        examples = "\n".join(f"{ex.user}\n{ex.char}" for ex in persona.examples())
        about = [persona.render(t) for t in (card.description, card.personality, card.scenario)]
        self.tiers = (
            Tier(frozenset(grams_of(rules)), cjk=7, other=24),  # instructions: short runs already leak
            Tier(frozenset(grams_of([*about, persona.render(examples)])), cjk=14, other=40),
        )

    def leaked_by(self, text: str) -> bool:
        """True when the reply repeats a stretch of any hidden text."""
        norm = normalize(text)
        return any(tier.leaked_by(norm) for tier in self.tiers)


def strip_echo(reply: str, message: str) -> str:
    """The reply without a leading repeat of the user's message."""
    target = normalize(message)
    if len(target) < 4:
        return reply
    # only the reply's start can hold the echo: normalizing a few characters more than the message
    # (normalizing drops marks and spaces) is enough, however long the reply grows
    size = len(message) + 16
    while len(head := normalize(reply[:size])) < len(target) and size < len(reply):
        size *= 2
    if not head.startswith(target):
        return reply
    seen = ""
    for i, ch in enumerate(reply):
        seen += normalize(ch)
        if len(seen) >= len(target):
            return reply[i + 1 :].lstrip(" \t\n，,。.!！?？:：")
    return ""


_LABEL = re.compile(r"(?:^|(?<=[\s。！？.!?…」』）)]))[A-Z][A-Za-z0-9_]{1,15}:\s")


@functools.lru_cache(maxsize=1024)
def _speaker_labels(speakers: tuple[str, ...]) -> re.Pattern[str] | None:
    names = sorted({s for s in speakers if s and len(s) <= 32}, key=len, reverse=True)
    known = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?:^|(?<=[\s。！？.!?…」』）)]))(?:{known})\s*[:：]") if known else None


_COLON = re.compile("[:：]")
LABEL_REACH = 64  # a label ends at its colon and begins at most this far before it (a 32-character name, spaces)


def cut_invented_turns(text: str, speakers: Sequence[str]) -> str:
    """Cut where the model starts speaking for someone else ("Tom: …"), even mid-line.

    A label ends at a colon: only the stretch before each colon is searched, the first colon first.
    """
    patterns = [p for p in (_speaker_labels(tuple(speakers)), _LABEL) if p is not None]
    for colon in _COLON.finditer(text):
        at = colon.start()
        found = [m.start() for p in patterns if (m := p.search(text, max(0, at - LABEL_REACH), at + 2))]
        if found:
            return text[: min(found)].rstrip()
    return text.rstrip()


def whole_sentences(text: str) -> str:
    """The text up to its last sentence end ("" when there is none)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()].rstrip() if ends else ""


class ReplyCheck:
    """Cleans a reply as it streams; `feed` and `finish` give the text that may be displayed so far.

    Checks come after the reply has grown by half since the last one (or by STEP characters
    while it is short): the checks of a whole stream cost a bounded multiple of its length, however
    small its pieces. The defect scan (loops, runs of one mark, the wrong language, overruns) reads
    only what is new and runs at every check; cleaning and the leak check (which read the reply
    again) run only when a sentence end has come within reach, since a stream shows whole sentences
    only. Once a defect is found the stream stops and the reply keeps its clean whole sentences
    (`result`), never less than was shown.
    """

    HOLD = 24  # characters kept back until a leak or an invented turn through them is ruled out
    GROWTH = 2  # check again once the reply has grown by 1/GROWTH (the screen shows whole sentences anyway)
    OVERLAP = 64  # a leak is a run of 40 letters or fewer: text checked before is read again only this far back
    STEP = 12  # ... or by this many characters (a stream shows whole sentences: no need to look sooner)

    def __init__(
        self, persona: Persona, hidden: Hidden, message: str, speakers: Sequence[str], scan: DefectScan | None = None
    ):
        self.persona = persona
        self.hidden = hidden
        self.message = message
        self.speakers = [s for s in speakers if s and s not in (persona.name, *persona.card.nickname)]
        self.scan = scan
        self._pieces: list[str] = []
        self._size = self._checked = 0  # characters received, and received at the last check
        self._due = self.STEP  # the size at which the next check is due
        self.released = 0
        self._shown = ""  # the text released so far
        self._leak_checked = 0  # cleaned characters already checked for leaks
        self.stopped = False  # the rest of the stream is not wanted (another speaker, a leak, a defect)
        self.leaked = False
        self.cost = 0.0  # seconds spent checking this reply
        self._retry = False  # the last check held back text that only the defect scan's caution kept
        self._cleaned: tuple[int, bool, str, bool] = (-1, False, "", False)  # (raw length, final, text, cut)
        self._clean_base: tuple[int, str] = (0, "")  # raw characters up to a blank, and them cleaned
        self._whole: tuple[str | None, str] = (None, "")  # (text, its clean whole sentences) before a defect

    @property
    def raw(self) -> str:
        """The reply as received so far."""
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    @property
    def defect(self) -> Defect | None:
        """The first broken part found (loop, symbols, language, overrun), if any."""
        return self.scan.defect if self.scan is not None else None

    def _clean(self, raw: str, final: bool) -> tuple[str, bool]:
        """The cleaned text of `raw`, and whether it was cut where someone else starts speaking."""
        names = [self.persona.name, *self.persona.card.nickname]
        text = clean_reply(self._clean_text(raw), names)  # no control or bidi characters either
        text = strip_echo(text, self.message) if final or len(text) > len(self.message) + 2 else ""
        cut = cut_invented_turns(text, self.speakers)
        return cut, len(cut) < len(text)

    def _clean_text(self, raw: str) -> str:
        """clean_text(raw), the part up to a blank already cleaned by an earlier call read only once.

        Nothing clean_text removes or joins spans a blank (control tokens hold none), so the text
        cleaned up to its last blank stays the start of the whole, cleaned, however it grows (at
        most a blank differs where a control token was cut).
        """
        at, done = self._clean_base
        if at > len(raw):  # the reply cut short before a defect: clean it whole
            at, done = 0, ""
        cut = max(raw.rfind(" ", at), raw.rfind("\n", at)) + 1
        if cut > at:
            done += clean_text(raw[at:cut])
            at = cut
            self._clean_base = (at, done)
        return done + clean_text(raw[at:])

    def text(self, final: bool = False) -> str:
        """The cleaned reply so far (up to its first defect)."""
        raw = self.raw
        defect = self.defect
        upto, final = (len(raw), final) if defect is None else (defect.at, True)
        if self._cleaned[:2] != (upto, final):  # the final text is asked for twice (finish, then result)
            self._cleaned = (upto, final, *self._clean(raw[:upto], final))
        text, cut = self._cleaned[2:]
        if cut:
            self.stopped = True
        return text

    def feed(self, delta: str) -> str:
        """Take a delta; return the newly releasable text."""
        if self.stopped or not delta:
            return ""
        self._pieces.append(delta)
        self._size += len(delta)
        if self._size < self._due:
            return ""
        checked, self._checked = self._checked, self._size
        self._due = self._size + max(self.STEP, self._size // self.GROWTH)
        if self.scan is not None:  # an overrun is caught as soon as it happens, not a growth step later
            self._due = min(self._due, max(self._size, self.scan.max_chars) + 1)
        if self.scan is not None and not self._retry:
            # a stream shows whole sentences only: unless a sentence end has come within reach since
            # the last check, nothing could be shown, and only the defect scan (which reads only
            # what is new) runs; leaks and other speakers are looked for before anything is shown
            started = time.perf_counter()
            raw = self.raw
            fresh = _SENTENCE_END.search(raw, max(0, checked - self.HOLD), max(0, self._size - self.HOLD))
            found = fresh is None and self.scan.scan(raw) is not None
            self.cost += time.perf_counter() - started
            if fresh is None and not found:
                return ""
        return self._release(final=False)

    def finish(self) -> str:
        """The stream ended: release the rest if it is clean."""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        started = time.perf_counter()
        try:
            return self._release_checked(final)
        finally:
            self.cost += time.perf_counter() - started

    def _release_checked(self, final: bool) -> str:
        limit = None
        if self.scan is not None and self.scan.scan(self.raw, final) is not None:
            self.stopped = True
        text = self.text(final)
        if self.hidden.leaked_by(text[max(0, self._leak_checked - self.OVERLAP) :]):
            self.leaked = self.stopped = True
            return ""
        self._leak_checked = len(text)
        if self.defect is not None:
            text = self._kept(text)
        elif self.scan is not None and not final:
            safe = self.scan.hold(self.raw)
            # where `safe` falls in the cleaned text, or earlier (cleaning drops and adds a few characters)
            limit = safe - abs(self._size - len(text)) if safe < self._size else None
        upto = len(text) if final or self.stopped else max(self.released, len(text) - self.HOLD)
        self._retry = limit is not None and limit < upto  # something held back for now: look again next time
        if limit is not None:
            upto = min(upto, limit)
        if self.scan is not None and not (final or self.stopped):  # whole sentences only, so a cut never takes back
            # the last sentence end: what was shown ends at one, so only what came after is searched
            ends = list(_SENTENCE_END.finditer(text, max(0, self.released - 4), upto))
            upto = len(text[: ends[-1].end()].rstrip()) if ends else 0
        if upto <= self.released:
            return ""
        out, self.released = text[self.released : upto], upto
        self._shown = text[:upto]
        return out

    def _kept(self, text: str) -> str:
        """The clean part before a defect: its whole sentences, never less than was already shown."""
        if self._whole[0] != text:
            kept = whole_sentences(text)
            if kept and self.scan is not None and self.scan.recheck(kept):  # e.g. a short reply all in the other language
                kept = ""
            self._whole = (text, kept)
        kept = self._whole[1]
        return kept if len(kept) >= self.released else text[: self.released]

    def result(self) -> str:
        """The final clean reply ("" when unusable)."""
        if self.leaked:  # whole sentences shown before the leak were checked then: they stand
            return self._shown if self.scan is not None and whole_sentences(self._shown) == self._shown else ""
        text = self.text(final=True)
        return self._kept(text) if self.defect is not None else text

    def why(self) -> str:
        """Why the reply is unusable, for the log."""
        if self.leaked:
            return "it repeats the hidden prompt"
        if not self.raw.strip():
            return "it is empty"
        if self.defect is not None:
            return f"{self.defect.kind} with no whole sentence before it"
        if self.stopped:
            return "it speaks for someone else"
        return "nothing is left after cleaning (an echo or a role label only)"
