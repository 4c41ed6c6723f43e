"""Which language a text is in (enough to skip a translation), and the persona glossary."""

from __future__ import annotations

import re
from collections.abc import Mapping

_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
# Chinese-only characters Japanese text does not use (simplified forms and particles).
_ZH_ONLY = re.compile(r"[们这说话吗呢吧么国门时东车见长问觉让还给过没对谁们咱汝]")


def language_of(text: str) -> str:
    """'ja', 'zh', 'en' or '' (nothing to judge): Japanese needs kana, as almost every sentence has."""
    kana = len(_KANA.findall(text))
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    if kana and kana >= 0.1 * (kana + han) and len(_ZH_ONLY.findall(text)) <= kana:
        return "ja"
    if han:
        return "zh"
    if latin:
        return "en"
    return ""


# simplified forms and particles Japanese never writes, then Chinese words Japanese rarely uses alone
_ZH_SIMPLIFIED = re.compile(r"[们这说话吗呢吧么国门时东车见长问觉让还给过对谁咱]")
_ZH_GRAMMAR = re.compile(r"[们这说话吗呢吧么国门时东车见长问觉让还给过对谁咱是很也就哪]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")


def japanese_share(text: str) -> float:
    """Share of letters that belong in Japanese (kana, and Han characters Japanese uses)."""
    kana = len(_KANA.findall(text))
    han = len(_HAN.findall(text))
    foreign = len(_LATIN.findall(text)) + len(_ZH_GRAMMAR.findall(text)) + len(_HANGUL.findall(text))
    letters = kana + han + len(_LATIN.findall(text)) + len(_HANGUL.findall(text))
    return (letters - foreign) / letters if letters else 0.0


def japanese_only(text: str, floor: float = 0.9) -> str:
    """The text fit to be spoken in Japanese: explanation lines in other languages dropped; "" if
    what is left is not Japanese throughout (at least `floor` of its letters)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and japanese_share(ln) >= 0.5]
    kept = "\n".join(lines).strip()
    if not kept or language_of(kept) != "ja" or _ZH_SIMPLIFIED.search(kept) or japanese_share(kept) < floor:
        return ""
    return kept


def glossary_for(text: str, glossary: Mapping[str, str]) -> dict[str, str]:
    """The glossary entries whose source term occurs in the text."""
    return {src: dst for src, dst in glossary.items() if src and src in text}


def apply_glossary(text: str, glossary: Mapping[str, str]) -> str:
    """Replace each source term with its rendering, longest terms first (罗伦斯 before 罗)."""
    terms = sorted((k for k in glossary if k), key=len, reverse=True)
    if not terms:
        return text
    pattern = re.compile("|".join(re.escape(t) for t in terms))
    return pattern.sub(lambda m: glossary[m.group(0)], text)
