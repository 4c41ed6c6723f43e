"""What recalled turns are indexed and queried by: words, stems, and the parts a question is made of."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from core.text import lexical_tokens

CONTEXT_WEIGHT = 0.3  # the last few messages count this much against the message itself

# words that carry no memory: English function words, and what questions about the past are made of
_EN_WORDS = (
    "i me my mine we our you your yours he him his she her it its they them their this that these those "
    "what which who whom whose when where why how do does did done be been being was were am have has had "
    "in on at for with from by about as into and or but so if then than too very can could will would "
    "shall should may might must just not no yes again ever still remember recall know tell say said told "
    "any some there here up out get got go going went kind sort thing things like really also both other"
)
_EN_STOP = frozenset(_EN_WORDS.split(" "))
_ASKING = frozenset([
    "什", "么", "吗", "呢", "着", "记", "得", "还", "哪", "几", "谁", "怎", "样", "来", "过", "说", "之", "前", "知", "道",
    "什么", "来着", "记得", "还记", "之前", "以前", "说过", "我说", "你说", "知道", "哪个", "哪里", "多少", "怎么", "是什",
])
_VOWEL = re.compile(r"[aeiouy]")
_DOUBLE = re.compile(r"([b-df-hj-np-rtv-z])\1$")
# where a question joins two things: each side is searched for on its own as well
_JOINS = re.compile(r",|;|\band\b|\bor\b|\bboth\b|\bbetween\b|\bbesides\b|\bother than\b|\bwhile\b|，|、|和|跟|还有|以及")


def stem(word: str) -> str:
    """A light English stem ("adopted", "adopting", "adopts" -> "adopt"; "hiking", "hike" -> "hik")."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed", "ly"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and _VOWEL.search(base):
            word = base[:-1] if _DOUBLE.search(base) and not base.endswith(("ll", "ss", "zz")) else base
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def normal(term: str) -> str:
    """An English word without its 's / 're / n't, stemmed; CJK terms as they are."""
    if not term.isascii():
        return term
    return stem(term.split("'", 1)[0])


def terms(text: str) -> list[str]:
    """What turns are indexed and queried by: `lexical_tokens`, English words stemmed, function words out."""
    return list(_terms(text))


@functools.lru_cache(maxsize=1024)  # one message is read several times (its parts, the notebook, the next context)
def _terms(text: str) -> tuple[str, ...]:
    out = []
    for token in lexical_tokens(text):
        if token in _EN_STOP:
            continue
        term = normal(token)
        if term and term not in _STOP_STEMS:
            out.append(term)
    return tuple(out)


_STOP_STEMS = _EN_STOP | {stem(w) for w in _EN_STOP}


def query_weights(message: str, context: Sequence[str], ignore: Sequence[str] = ()) -> dict[str, float]:
    """Terms of the message at full weight, of the last few messages at CONTEXT_WEIGHT.

    Question words and the `ignore`d names (the character's, which nearly every message to it holds)
    are left out.
    """
    skip = set(_ASKING)
    for name in ignore:
        skip.update(terms(name))
    weights: dict[str, float] = {}
    for text in context:
        for term in terms(text):
            if term not in skip:
                weights[term] = CONTEXT_WEIGHT
    for term in terms(message):
        if term not in skip:
            weights[term] = 1.0
    return weights


def clauses(message: str) -> list[str]:
    """The message's clauses with two or more words each, when it has two or more ("what X likes besides Y")."""
    found = [c.strip(" ?？") for c in _JOINS.split(message)]
    found = [c for c in found if len(terms(c)) >= 2]
    return found if len(found) > 1 else []


def parts(message: str, weights: dict[str, float], names: Sequence[str] = ()) -> list[dict[str, float]]:
    """The message's parts, each searched for alone: its clauses, and each member it names with the rest.

    "What do Jon and Gina both like?" gives {jon, like} and {gina, like}; "the cafe and the park"
    gives {cafe} and {park}. Empty when the message is one part.
    """
    clauses = [c for c in (_JOINS.split(message)) if c.strip()]
    found: list[dict[str, float]] = []
    named = [n for n in names if n in weights]
    named = [n for n in named if n.isascii() or not any(n != m and n in m for m in named)]  # 阿青, not also 阿 and 青
    if len(named) > 1:  # one search per member named, with the words that are no member's
        rest = {t: w for t, w in weights.items() if t not in named}
        found += [{name: weights[name], **rest} for name in named]
    if len(clauses) > 1:
        for clause in clauses:
            own = {t: weights[t] for t in terms(clause) if t in weights}
            if own and own not in found and len(own) < len([t for t, w in weights.items() if w >= 1.0]):
                found.append(own | {n: weights[n] for n in named if n not in own and len(named) == 1})
    return found
