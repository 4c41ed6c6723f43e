"""Text helpers shared by memory and retrieval: a Chinese-aware tokenizer, token estimates, BM25."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff"
_WORD = re.compile(rf"[{_CJK}]+|[a-zA-Z0-9]+(?:'[a-z]+)?")
_IS_CJK = re.compile(rf"[{_CJK}]")
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_STOP = frozenset(["的", "了", "是", "在", "吗", "呢", "吧", "啊", "呀", "么", "我", "你", "他", "她", "它", "这", "那", "就", "也", "都", "和", "与", "a", "an", "the", "is", "are", "to", "of"])


def lexical_tokens(text: str) -> list[str]:
    """CJK runs become single characters plus character bigrams; other words are lowercased."""
    out: list[str] = []
    for run in _WORD.findall(text):
        if _IS_CJK.match(run):
            chars = [c for c in run if c not in _STOP]
            out.extend(chars)
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            word = run.lower()
            if word not in _STOP:
                out.append(word)
    return out


def char_classes(text: str) -> tuple[int, int]:
    """(CJK characters, other characters) in text."""
    if text.isascii():
        return 0, len(text)
    return _char_classes(text)


@functools.lru_cache(maxsize=4096)  # the same texts (persona prefix, window turns) are counted for every message
def _char_classes(text: str) -> tuple[int, int]:
    cjk = sum(map(len, _CJK_RUN.findall(text)))
    return cjk, len(text) - cjk


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one per CJK character, one per ~4 other characters."""
    cjk, other = char_classes(text)
    return cjk + math.ceil(other / 4)


def truncate_tokens(text: str, budget: int, count: Callable[[str], int] = estimate_tokens) -> str:
    """Cut text (at a character) so its count fits the budget."""
    if count(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


class SmallBM25:
    """Okapi BM25 over a small in-memory corpus (card examples, lorebook)."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        self.docs = [Counter(d) for d in docs]
        self.lens = [len(d) for d in docs]
        self.avg = (sum(self.lens) / len(self.lens)) if self.lens else 0.0
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: Sequence[str]) -> list[float]:
        """BM25 score of every document for the query tokens."""
        out = []
        for doc, length in zip(self.docs, self.lens, strict=True):
            s = 0.0
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg or 1))
            for t in set(query):
                tf = doc.get(t, 0)
                if tf:
                    s += self.idf[t] * tf * (self.k1 + 1) / (tf + norm)
            out.append(s)
        return out


GRAM = 6  # run detection works on shared 6-character grams
_CJK_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff]")


# common marks and blanks: neither letters nor digits, nor do they become any under NFKC, so they are
# dropped before it (full-width Chinese marks would otherwise send every Chinese text down NFKC's slow path)
_MARKS = str.maketrans("", "", "，。！？、；：“”‘’（）《》【】「」『』…—～·　 \t\n,.!?;:'\"()[]-~*_/")


def normalize(text: str) -> str:
    """Letters and digits only, case-folded (punctuation, symbols and spaces dropped)."""
    text = text.translate(_MARKS)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return "".join(filter(str.isalnum, text.casefold()))


def _grams(text: str) -> set[str]:
    return {text[i : i + GRAM] for i in range(len(text) - GRAM + 1)}


def longest_shared_run(text: str, grams: AbstractSet[str], shortest: int = GRAM) -> tuple[int, int]:
    """(length, CJK characters in it) of the longest run of `text` made of grams from `grams`.

    Runs shorter than `shortest` characters may be missed: only every (shortest - GRAM + 1)th gram
    is looked up at first (a run that long holds one of them), then each hit is followed both ways.
    """
    last = len(text) - GRAM
    if last < 0 or not grams:
        return (0, 0)
    stride = max(1, shortest - GRAM + 1)
    hits = [i for i in range(0, last + 1, stride) if text[i : i + GRAM] in grams]
    best, best_at, reach = 0, 0, -1
    for i in hits:
        if i <= reach:
            continue  # inside the run just followed
        lo = i
        while lo > reach + 1 and text[lo - 1 : lo - 1 + GRAM] in grams:
            lo -= 1
        hi = i
        while hi < last and text[hi + 1 : hi + 1 + GRAM] in grams:
            hi += 1
        reach = hi
        if hi - lo + GRAM > best:
            best, best_at = hi - lo + GRAM, lo
    run = text[best_at : best_at + best]
    return (best, len(_CJK_CHAR.findall(run)))


def grams_of(texts: Sequence[str]) -> set[str]:
    """The 6-character grams of the normalized texts."""
    out: set[str] = set()
    for t in texts:
        out |= _grams(normalize(t))
    return out


def decode_text(data: bytes) -> str:
    """Text from bytes: BOMs first, then UTF-8, then GB18030 (which accepts GBK and GB2312)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace")
