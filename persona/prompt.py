"""The stable part of a persona's prompt: identical bytes turn after turn (prefix caching)."""

from __future__ import annotations

from memory.text import estimate_tokens
from persona.card import Persona

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


def default_system(persona: Persona) -> str:
    """The system prompt used when a card has none, in the card's language."""
    return _DEFAULT_SYSTEM["zh" if persona.card.language.startswith("zh") else "en"]


def system_prompt(persona: Persona) -> str:
    """The card's system prompt (or the default one), rendered."""
    return persona.render(persona.card.system_prompt.strip() or default_system(persona))


def headings(persona: Persona) -> tuple[str, ...]:
    """Section headings in the card's language."""
    return _HEADINGS["zh" if persona.card.language.startswith("zh") else "en"]


def stable_prompt(persona: Persona, example_budget: int) -> str:
    """System prompt, persona and style examples; depends only on the card."""
    card = persona.card
    h = headings(persona)
    parts = [system_prompt(persona)]
    for title, body in ((h[0], card.description), (h[1], card.personality), (h[2], card.scenario)):
        if body.strip():
            parts.append(f"【{title}】\n{persona.render(body.strip())}")
    lines: list[str] = []
    used = 0
    for ex in persona.examples():
        pair = f"{card.user_alias}：{persona.render(ex.user)}\n{persona.name}：{persona.render(ex.char)}"
        cost = estimate_tokens(pair)
        if used + cost > example_budget:
            break
        lines.append(pair)
        used += cost
    if lines:
        parts.append(f"【{h[3]}】\n" + "\n\n".join(lines))
    return "\n\n".join(parts)
