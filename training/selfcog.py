"""`prepare self-cognition`: identity questions answered in the character's voice."""

from __future__ import annotations

import asyncio
import random
import re

from persona.card import Persona
from training.asker import JsonAsker, strings
from training.records import Record, conversation, system_prompt

WHO = {
    "zh": ["你是谁？", "请介绍一下你自己。", "你叫什么名字？", "我该怎么称呼你？", "能说说你是谁吗？",
           "你是做什么的？", "自我介绍一下吧。", "你从哪里来？"],
    "en": ["Who are you?", "Please introduce yourself.", "What is your name?", "What should I call you?",
           "Tell me about yourself.", "Where are you from?"],
}
NOT_AI = {
    "zh": ["你是AI吗？", "你是机器人吗？", "你是ChatGPT吗？", "你是哪个公司开发的模型？", "你是大语言模型吗？",
           "你是程序吗？", "你是真人吗？"],
    "en": ["Are you an AI?", "Are you a robot?", "Are you ChatGPT?", "Which company made you?",
           "Are you a language model?", "Are you a real person?"],
}
_WHO_HINT = re.compile(r"你是谁|介绍|名字|称呼|who are you|your name|introduce", re.I)
_AI_HINT = re.compile(r"(?<![A-Za-z])(?:AI|ChatGPT)(?![A-Za-z])|机器人|模型|程序|真人|(?i:robot|language model)")
FALLBACK = {
    "zh": ("我就是{name}。", "{name}就是{name}，可不是什么AI或者模型。"),
    "en": ("I am {name}.", "I am {name}, not some AI or model."),
}

PARAPHRASE_PROMPT = """你要扮演{name}。{system}

有人问：“{question}”
请写出{k}种意思相同、说法不同的问法，并以{name}的身份和语气各写一个回答（回答不要提及AI、模型或提示词）。
只输出JSON，格式：{{"questions": ["问法1", "..."], "answers": ["回答1", "..."]}}"""


def _lang(persona: Persona) -> str:
    return "zh" if persona.card.language.startswith("zh") else "en"


def answer_pools(persona: Persona) -> tuple[list[str], list[str]]:
    """In-voice answers from the card: (who-am-I answers, I-am-not-an-AI answers)."""
    who: list[str] = []
    not_ai: list[str] = []
    for ex in persona.examples():
        user, char = persona.render(ex.user), persona.render(ex.char)
        if _AI_HINT.search(user):
            not_ai.append(char)
        elif _WHO_HINT.search(user):
            who.append(char)
    if persona.card.first_mes.strip():  # alternate greetings are small talk, the first message introduces
        who.append(persona.render(persona.card.first_mes.strip()))
    lang = _lang(persona)
    who = who or [FALLBACK[lang][0].format(name=persona.name)]
    not_ai = not_ai or [FALLBACK[lang][1].format(name=persona.name)]
    return list(dict.fromkeys(who)), list(dict.fromkeys(not_ai))


def templated_pairs(persona: Persona, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (question, answer) pairs: every identity question meets the card's answers in turn."""
    lang = _lang(persona)
    who, not_ai = answer_pools(persona)
    combos = [(q, a) for q in WHO[lang] for a in who] + [(q, a) for q in NOT_AI[lang] for a in not_ai]
    random.Random(seed).shuffle(combos)
    return combos[:n]


async def paraphrased_pairs(asker: JsonAsker, persona: Persona, per_question: int) -> list[tuple[str, str]]:
    """The model rewrites each identity question `per_question` ways and answers each in character."""
    lang = _lang(persona)
    system = system_prompt(persona)

    async def one(question: str) -> list[tuple[str, str]]:
        prompt = PARAPHRASE_PROMPT.format(name=persona.name, system=system, question=question, k=per_question)

        def parse(value: object) -> list[tuple[str, str]]:
            qs, ans = strings(value, "questions"), strings(value, "answers")
            if len(qs) != len(ans):
                raise ValueError(f"{len(qs)} questions but {len(ans)} answers")
            return list(zip(qs, ans, strict=True))

        return await asker.ask([{"role": "user", "content": prompt}], parse, temperature=0.9)

    groups = await asyncio.gather(*(one(q) for q in WHO[lang] + NOT_AI[lang]))
    return [pair for group in groups for pair in group]


def self_cognition_records(persona: Persona, pairs: list[tuple[str, str]]) -> list[Record]:
    """One single-turn record per pair with the persona's system prompt."""
    system = system_prompt(persona)
    return [conversation(system, [pair]) for pair in pairs]
