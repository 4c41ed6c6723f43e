"""Background memory upkeep: fold old turns into the rolling summary, note facts about users."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from bot.background import Background
from bot.config import MemoryConfig
from bot.hygiene import grams_of, longest_shared_run, normalize
from bot.llm import ChatMessage, ChatModel, LLMError
from memory.store import ConversationStore
from memory.text import char_classes, estimate_tokens
from memory.turns import SessionKey, Summary, Turn
from persona.card import Persona

log = logging.getLogger(__name__)
FOLD_TOKENS = 1500

SUMMARY_PROMPT = {
    "zh": "你在为角色扮演对话维护一份前情提要。把【旧提要】和【新对话】合并成一份新的提要："
    "保留人物、事件、承诺、每位用户的称呼与关系，省略寒暄；用第三人称，不超过{limit}字。只输出提要正文。",
    "en": "You keep the running summary of a roleplay chat. Merge 【旧提要】 (the old summary) and 【新对话】 "
    "(new messages) into one new summary: keep people, events, promises, how each user is called and "
    "related; skip small talk; third person; at most {limit} words. Output only the summary.",
}
FACTS_PROMPT = {
    "zh": "从下面{name}说的话里，找出值得长期记住的关于{name}本人的事实（名字、喜好、职业、计划、经历等），"
    '最多3条，每条一句话。只输出JSON字符串数组，例如 ["喜欢苹果"]；没有就输出 []。',
    "en": "From what {name} said below, list lasting facts about {name} (name, likes, job, plans, history), "
    'at most 3, one sentence each. Output only a JSON array of strings, e.g. ["likes apples"], or [] if none.',
}


UNNAMED = {"zh": "用户", "en": "the user"}  # when the platform gives no display name


def _lang(persona: Persona) -> str:
    return "zh" if persona.card.language.startswith("zh") else "en"


def render_turns(turns: Sequence[Turn], persona: Persona) -> str:
    """Turns as `name: text` lines."""
    return "\n".join(f"{persona.name if t.role == 'assistant' else (t.name or t.user_id)}: {t.text}" for t in turns)


def usable_summary(text: str, persona: Persona, limit: int, sources: Sequence[str]) -> str:
    """The summary if it is fit to keep: within its length, in the persona's language, not an echo."""
    text = text.strip()
    if not text or estimate_tokens(text) > limit * 1.5:
        return ""
    cjk, other = char_classes(text)
    if _lang(persona) == "zh" and cjk < 0.3 * (cjk + other / 2):
        return ""  # a Chinese persona's memory written in another language
    norm = normalize(text)
    for source in sources:
        run, _ = longest_shared_run(norm, grams_of([source]))
        if run >= 0.6 * len(norm):
            return ""  # a copy of the prompt or of the conversation, not a summary
    return text


def usable_fact(fact: str, said: Sequence[str]) -> bool:
    """A fact is a short statement, not a copy of a whole message."""
    norm = normalize(fact)
    return 2 <= len(norm) <= 80 and not any(norm == normalize(s) and len(norm) > 20 for s in said)


def parse_facts(raw: str) -> list[str]:
    """The JSON string array in a model answer (tolerates code fences and chatter around it)."""
    match = re.search(r"\[.*\]", raw, re.S)
    if not match:
        return []
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    return [s.strip()[:120] for s in items if isinstance(s, str) and s.strip()][:3]


class Summarizer:
    """Schedules summary and fact updates; each runs in the background and never blocks a reply."""

    def __init__(
        self, cfg: MemoryConfig, store: ConversationStore, model: ChatModel, background: Background
    ):
        self.cfg = cfg
        self.store = store
        self.model = model
        self.background = background

    def fold(self, key: SessionKey, persona: Persona, summary: Summary, turns: Sequence[Turn]) -> None:
        """Fold `turns` (which fell out of the window) into the summary, later."""
        if not (self.cfg.summary and turns):
            return
        # a bounded bite, oldest first: a long backlog is folded over several replies
        bite: list[Turn] = []
        used = 0
        for turn in turns:
            used += estimate_tokens(turn.text) + 4
            if bite and used > FOLD_TOKENS:
                break
            bite.append(turn)
        self.background.spawn(self._fold(key, persona, summary, bite), name=f"summary {key}", key=f"sum:{key}")

    async def _fold(self, key: SessionKey, persona: Persona, old: Summary, turns: list[Turn]) -> None:
        limit = self.cfg.summary_tokens
        prompt = [
            ChatMessage("system", SUMMARY_PROMPT[_lang(persona)].format(limit=limit)),
            ChatMessage("user", f"【旧提要】\n{old.text or '（无）'}\n\n【新对话】\n{render_turns(turns, persona)}"),
        ]
        try:
            raw = await self.model.complete(prompt, max_tokens=limit + limit // 2, temperature=0.3)
        except LLMError as exc:
            log.info("summary skipped: %s", exc)
            return
        text = usable_summary(raw, persona, limit, [prompt[0].content, render_turns(turns, persona)])
        if not text:
            log.info("summary of %s rejected (too long, wrong language or an echo); kept the old one", key)
            return
        if await self.store.set_summary(key, Summary(text, turns[-1].seq)):
            log.info("summary of %s now covers turns up to %d", key, turns[-1].seq)

    def note_facts(self, persona: Persona, platform: str, user_id: str, name: str, said: Sequence[str]) -> None:
        """Extract lasting facts about a user from what they said, later."""
        if self.cfg.facts and self.cfg.facts_per_user and said:
            self.background.spawn(
                self._facts(persona, platform, user_id, name, list(said)),
                name=f"facts {platform}:{user_id}",
                key=f"facts:{persona.id}:{platform}:{user_id}",
            )

    async def _facts(self, persona: Persona, platform: str, user_id: str, name: str, said: list[str]) -> None:
        prompt = [
            ChatMessage("system", FACTS_PROMPT[_lang(persona)].format(name=name or UNNAMED[_lang(persona)])),
            ChatMessage("user", "\n".join(said)),
        ]
        try:
            facts = parse_facts(await self.model.complete(prompt, max_tokens=160, temperature=0.2))
        except LLMError as exc:
            log.info("facts skipped: %s", exc)
            return
        facts = [f for f in facts if usable_fact(f, said)]
        log.info("facts about %s:%s: %d new", platform, user_id, len(facts))
        if facts:
            await self.store.add_facts(persona.id, platform, user_id, facts, self.cfg.facts_per_user)
