"""The translation chain: the model turns a reply into the voice's language, in the character's tone."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

from core.llm import ChatMessage, ChatModel, LLMError
from persona.card import Persona
from voice.base import VoiceError
from voice.language import apply_glossary, glossary_for, japanese_only, language_of

LANGUAGE_NAMES = {"ja": "Japanese", "zh": "Chinese", "en": "English"}
_WRAPPERS = re.compile(r"^(?:```\w*\s*|[「『\"“]|(?:translation|翻訳|译文)\s*[:：]\s*)|(?:\s*```|[」』\"”])$", re.I)


def translation_budget(text: str) -> int:
    """max_tokens for translating `text`: room for ~3 tokens a character, so long replies are not cut."""
    return min(4096, 64 + 3 * len(text))


def translation_prompt(persona: Persona, text: str, target: str) -> list[ChatMessage]:
    """System + user messages: keep the tone, use the glossary, answer with the translation only."""
    lang = LANGUAGE_NAMES.get(target, target)
    card = persona.card
    lines = [
        f"You translate lines spoken by {persona.name} into natural spoken {lang} for a voice actor.",
        "Keep the character's tone, speech habits, self-reference and way of addressing others.",
    ]
    if card.personality.strip():
        lines.append(f"Character: {card.personality.strip()[:300]}")
    terms = glossary_for(text, card.glossary)
    if terms:
        lines.append("Always render these words exactly like this:")
        lines += [f"- {src} → {dst}" for src, dst in terms.items()]
    lines.append(f"Output only the {lang} translation: no quotes, notes, romanization or explanations.")
    return [ChatMessage("system", "\n".join(lines)), ChatMessage("user", text)]


def clean_translation(raw: str) -> str:
    """Strip the wrappers models like to add (code fences, quotes, a 'Translation:' label)."""
    text = raw.strip()
    for _ in range(3):
        stripped = _WRAPPERS.sub("", text).strip()
        if stripped == text:
            break
        text = stripped
    return text


class ModelTranslator:
    """Translates through a ChatModel; results are cached by content hash; same-language text is kept."""

    def __init__(self, model: ChatModel | None, *, owned: bool = False, cache_size: int = 512):
        self.model = model
        self.owned = owned
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self.calls = 0

    async def translate(self, persona: Persona, text: str, target: str) -> str | None:
        """The text in `target`; without a model only text already in `target` is kept (glossary applied)."""
        text = text.strip()
        if not text:
            return None
        if language_of(text) == target:
            # the card's glossary maps its terms into Japanese; other target languages keep the text
            return apply_glossary(text, persona.card.glossary) if target == "ja" else text
        if self.model is None:
            return None  # offline mode: nothing can translate, and speaking the wrong language helps nobody
        messages = translation_prompt(persona, text, target)
        key = hashlib.sha256(repr((target, [m.content for m in messages])).encode()).hexdigest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            raw = await self.model.complete(messages, max_tokens=translation_budget(text), temperature=0.3)
        except LLMError as exc:
            raise VoiceError(f"translation failed: {exc}") from exc
        self.calls += 1
        result = clean_translation(raw)
        if target == "ja":
            result = japanese_only(result)  # a mixed or explained translation is never spoken
        if not result or language_of(result) != target:
            return None  # nothing, or the wrong language: better no clip than a garbled one
        # Terms the model copied through untranslated still get the character's rendering.
        result = apply_glossary(result, persona.card.glossary)
        self._cache[key] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    async def close(self) -> None:
        """Close the model only when it was built for translation alone."""
        if self.owned and self.model is not None:
            await self.model.close()
