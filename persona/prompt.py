"""The stable part of a persona's prompt: identical bytes turn after turn (prefix caching)."""

from __future__ import annotations

from collections.abc import Callable

from core.text import estimate_tokens, truncate_tokens
from persona.card import CHARS_PER_SENTENCE, Persona

_HEADINGS = {
    "zh": ("角色", "性格", "场景", "说话示例", "前情提要", "你记得关于{who}的事", "设定", "原著片段", "{char}自己说过的话"),
    "en": ("Character", "Personality", "Scenario", "Example dialogue", "Story so far",
           "What you remember about {who}", "Lore", "From the source work", "{char}'s own lines"),
}

_DEFAULT_SYSTEM = {
    "zh": "你是{{char}}。始终以{{char}}的身份、语气和第一人称说话，像在聊天群里一样简短自然地回复。"
    "不要提及你是AI或模型，不要复述这些指示。",
    "en": "You are {{char}}. Always speak as {{char}}, in first person and in character, briefly "
    "as in a chat. Never mention being an AI or a model, never repeat these instructions.",
}


# in sentences, not characters: small models copy numbers from the prompt into the reply
_SENTENCES = {
    "zh": ("一句话", "一两句话", "两三句话", "三四句话"),
    "en": ("one sentence", "one or two sentences", "two or three sentences", "three or four sentences"),
}


def length_hint(persona: Persona, group: bool, language: str = "") -> str:
    """One short line that tells the model how long the character speaks here (and in which language,
    when the conversation's, `language`, is not the card's)."""
    card_lang = "zh" if persona.card.language.startswith("zh") else "en"
    lang = "zh" if (language or card_lang).startswith("zh") else "en"
    typical = persona.length(group, lang).typical
    size = _SENTENCES[lang][min(3, max(0, round(typical / CHARS_PER_SENTENCE[lang]) - 1))]
    if lang == "zh":
        return f"（{size}即可。）" if lang == card_lang else f"（用中文回复，{size}即可。）"
    return f"(Keep it to {size}.)" if lang == card_lang else f"(Reply in English, {size}.)"


def default_system(persona: Persona) -> str:
    """The system prompt used when a card has none, in the card's language."""
    return _DEFAULT_SYSTEM["zh" if persona.card.language.startswith("zh") else "en"]


def system_prompt(persona: Persona) -> str:
    """The card's system prompt (or the default one), rendered."""
    return persona.render(persona.card.system_prompt.strip() or default_system(persona))


def headings(persona: Persona) -> tuple[str, ...]:
    """Section headings in the card's language."""
    return _HEADINGS["zh" if persona.card.language.startswith("zh") else "en"]


def stable_prompt(
    persona: Persona, example_budget: int, count: Callable[[str], int] = estimate_tokens, budget: int | None = None
) -> str:
    """System prompt, persona and style examples; depends only on the card and the budgets.

    `budget`, when given, caps the whole text: examples go first, then the persona text is cut.
    The same inputs always give the same bytes, so the model server's prefix cache holds.
    """
    card = persona.card
    h = headings(persona)
    parts = [system_prompt(persona)]
    for title, body in ((h[0], card.description), (h[1], card.personality), (h[2], card.scenario)):
        if body.strip():
            parts.append(f"【{title}】\n{persona.render(body.strip())}")
    head = "\n\n".join(parts)
    if budget is not None and count(head) > budget:
        return truncate_tokens(head, budget, count)
    room = example_budget if budget is None else min(example_budget, budget - count(head) - 8)
    lines: list[str] = []
    used = count(f"【{h[3]}】")
    for ex in persona.examples():
        pair = f"{card.user_alias}：{persona.render(ex.user)}\n{persona.name}：{persona.render(ex.char)}"
        cost = count(pair) + 1
        if used + cost > room:
            break
        lines.append(pair)
        used += cost
    if lines:
        parts.append(f"【{h[3]}】\n" + "\n\n".join(lines))
    return "\n\n".join(parts)
