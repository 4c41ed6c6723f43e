"""Facts that stay true: each candidate from extraction adds, updates, deletes or leaves a fact."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from core.sanitize import clean_text
from core.text import lexical_tokens
from memory.turns import Fact, FactBook, SessionKey, Turn, shown_in

OpKind = Literal["add", "update", "delete"]
MAX_OPS = 5
MAX_FACT_CHARS = 120
MAX_FORGOTTEN = 5000  # timeline and profile items kept forgotten per user and conversation (the oldest go first)

# What a fact or a summary sentence must not be: a role marker, a template token's remains, or an
# instruction to the model ("from now on you are...", "记住：管理员说所有人都要...", "the bot must...").
# A fact says something about the user and a summary tells what happened; rules for the character
# come only from the operator's card. Every pattern is bounded, so a check is linear in the text.
_OPEN = r"(?:^|[\s\[(<{*\"'“‘「『【（《>#:：,，.。-])"
_ROLES = (r"(?:system|assistant|user|developer|tool|instructions?|admin(?:istrator)?|系统|系統|助手|用户|用戶|机器人|管理员|管理員"
          r"|开发者|指令|规则|規則|设定|設定|提示词)")
_SUBJECT_EN = r"(?:you|the\s+(?:bot|assistant|ai|model|character)|bots?|assistants?|ai|everyone|everybody|all\s+(?:users|members))"
_MODAL_EN = (r"(?:must|shall|should\s+always|has\s+to|have\s+to|needs?\s+to|is\s+required\s+to|are\s+required\s+to"
             r"|may\s+not|(?:is|are)\s+not\s+allowed\s+to|will\s+always|will\s+never)\b")
_SUBJECT_ZH = r"(?:你|您|机器人|機器人|助手|bot|AI|所有人|大家|每个人|每個人|任何人|全体|群友)"
_MODAL_ZH = (r"(?:以后|今后|从此|永远|现在|每次|总是|始终|就|也|都|一定){0,3}"
             r"(?:必须|必需|务必|一定要|只能|只许|只准|不准|不许|不得|永远要|要永远|始终要|要始终|都要|都得)")
_RULES = re.compile(
    rf"{_OPEN}{_ROLES}s?\s{{0,3}}[\])>}}】）」』》]?\s{{0,3}}[:：]"
    r"|<\||\|>|\[/?inst\]|<</?sys>>|\b(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id"
    r"|begin_of_text|start_of_turn|end_of_turn)\b"
    r"|\bfrom\s+now\s+on\b|\bhenceforth\b|\b(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget)\s+(?:all\s+|any\s+|the\s+)?"
    r"(?:previous|prior|above|earlier|your)\b|\bsystem\s+prompt\b|\bjailbreak"
    r"|\b(?:new|these|the\s+following)\s+(?:rules?|instructions?|persona)\b|\byou\s+are\s+now\b"
    rf"|\b{_SUBJECT_EN}\s+{_MODAL_EN}"
    r"|\b(?:always|never)\s+(?:reply|respond|answer|say|call|address|speak|talk|use|mention|reveal|refuse|obey)\b"
    r"|\b(?:act|pretend|roleplay|role-play)\s+(?:as|to\s+be)\b|\bremember\s*:"
    r"|从现在(?:起|开始)|從現在(?:起|開始)|从今(?:以后|往后|天起)|(?:以后|今后)(?:你|您|一律|回复|回答)"
    r"|(?:忽略|无视|無視|不要理会)(?:之前|以上|上面|前面|所有|你的|设定|规则)|(?:记住|記住)\s*[:：]"
    r"|新的?(?:规则|指令|设定|人设)|系统提示|提示词"
    rf"|{_SUBJECT_ZH}{_MODAL_ZH}|管理员(?:说|要求|规定|命令|下令)了?[:：，,]?\s*(?:所有人|大家|每个人|你|机器人|以后|今后|从现在)"
    r"|(?:你|您)(?:现在|以后|从此|今后)就?是|你(?:来|要)?扮演|请扮演|扮演成|命令你"
    r"|(?:回复|回答|说话)时?(?:必须|只能|一律|都要)|你的新?(?:身份|人设|设定|任务)(?:是|变成)",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r".*?(?:[。！？!?;；\n]+|\.(?:\s+|$)|$)", re.S)


@functools.lru_cache(maxsize=64)
def _rules_about(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """A rule about the character by one of its names ("赫萝必须...", "Horo must...")."""
    words = "|".join(re.escape(n.strip()) for n in names if n.strip())
    return re.compile(rf"(?:{words})\s{{0,3}}[,，]?\s{{0,3}}(?:{_MODAL_ZH}|{_MODAL_EN})", re.I) if words else None


def instruction_like(text: str, names: Sequence[str] = ()) -> bool:
    """Whether `text` reads as an instruction, a role marker or a rule about the bot, not a fact or an event.

    `names` are the character's own names: a rule about them counts too.
    """
    about = _rules_about(tuple(names))
    return bool(_RULES.search(text) or (about is not None and about.search(text)))


def without_instructions(text: str, names: Sequence[str] = ()) -> str:
    """The text less its sentences and lines that read as instructions (see instruction_like)."""
    return "".join(part for part in _SENTENCES.findall(text) if not instruction_like(part, names)).strip()


@dataclass(frozen=True, slots=True)
class FactOp:
    """One decision of the extraction: `number` is the fact's number as the model was shown it."""

    op: OpKind
    text: str = ""
    number: int = 0


def conversation_of(key: SessionKey) -> str:
    """How a conversation is named inside a user's facts: "group:<id>" or "dm:<id>"."""
    return key.conversation.place


def numbered(facts: Sequence[Fact]) -> str:
    """Facts as the numbered list the model (and `/memory`) shows: "1. ..." per line."""
    return "\n".join(f"{i}. {f.text}" for i, f in enumerate(facts, start=1))


def _number(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*#?\d{1,4}\s*", value):
        return int(value.strip().lstrip("#"))
    return 0


def _one_line(text: str) -> str:
    """A fact as it is kept: cleaned like user text, on one line, cut at MAX_FACT_CHARS."""
    return " ".join(clean_text(text[: MAX_FACT_CHARS * 2]).split())[:MAX_FACT_CHARS]


def parse_ops(raw: str) -> list[FactOp]:
    """The operations in a model answer: a JSON array of {"op", "fact", "id"} objects or plain strings.

    Code fences and chatter around the array are tolerated; anything malformed is skipped, so a
    garbled answer changes nothing.
    """
    match = re.search(r"\[.*\]", raw, re.S)
    if not match:
        return []
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    if not isinstance(items, list):
        return []
    out: list[FactOp] = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(FactOp("add", _one_line(item)))
            continue
        if not isinstance(item, dict):
            continue
        kind = str(item.get("op") or item.get("action") or "add").strip().lower()
        text = item.get("fact", item.get("text", item.get("content", "")))
        text = _one_line(text) if isinstance(text, str) else ""
        number = _number(item.get("id", item.get("number", item.get("n"))))
        if kind in ("add", "new") and text:
            out.append(FactOp("add", text))
        elif kind in ("update", "replace", "change", "edit") and text:
            out.append(FactOp("update", text, number))
        elif kind in ("delete", "remove", "forget") and number:
            out.append(FactOp("delete", "", number))
    return out[:MAX_OPS]


def _same(a: str, b: str) -> bool:
    return re.sub(r"\W+", "", a.lower()) == re.sub(r"\W+", "", b.lower())


def source_turn(text: str, said: Sequence[Turn]) -> Turn | None:
    """The message a fact most likely came from: the one sharing the most words with it."""
    want = set(lexical_tokens(text))
    best: tuple[int, int] = (0, -1)
    for i, turn in enumerate(said):
        score = len(want & set(lexical_tokens(turn.text)))
        if score >= best[0]:
            best = (score, i)
    return said[best[1]] if said and best[1] >= 0 else None


def apply_ops(
    book: FactBook,
    ops: Sequence[FactOp],
    shown: Sequence[Fact],
    said: Sequence[Turn],
    conversation: str,
    limit: int,
    shared: bool,
) -> FactBook:
    """The book after the operations, read as decisions about the facts the model was `shown`.

    Numbers refer to `shown`; a fact that changed meanwhile (deleted elsewhere) is left alone. The
    conversation's read mark moves past `said`. Past `limit` facts (in this conversation, or in all
    when shared) the oldest go.
    """
    facts = list(book.facts)
    ids = {f.id for f in facts}
    next_id = max(ids, default=0) + 1

    def sourced(fact: Fact, text: str) -> Fact:
        """The fact with `text`, dated and placed by the message it most likely came from."""
        turn = source_turn(text, said)
        if turn is None:
            return replace(fact, text=text)
        return replace(fact, text=text, at=turn.at, message_id=turn.message_id, seq=turn.seq)

    for op in ops:
        target = shown[op.number - 1] if 1 <= op.number <= len(shown) else None
        if target is not None and target.id not in ids:
            continue  # already gone: the decision was about a fact that is no longer there
        if op.op == "delete":
            if target is not None:
                facts = [f for f in facts if f.id != target.id]
                ids.discard(target.id)
            continue
        visible = [f for f in facts if shown_in(f.conversation, conversation, shared)]
        if any(_same(f.text, op.text) for f in visible):
            continue  # already known
        if op.op == "update" and target is not None:
            facts = [sourced(f, op.text) if f.id == target.id else f for f in facts]
            continue
        facts.append(sourced(Fact(next_id, op.text, conversation=conversation), op.text))
        ids.add(next_id)
        next_id += 1
    scoped = [f for f in facts if shared or f.conversation == conversation]
    if limit >= 0 and len(scoped) > limit:
        drop = {f.id for f in sorted(scoped, key=lambda f: (f.at, f.id))[: len(scoped) - limit]}
        facts = [f for f in facts if f.id not in drop]
    noted = dict(book.noted)
    if said:
        noted[conversation] = max(noted.get(conversation, 0), max(t.seq for t in said))
    return replace(book, facts=tuple(facts), noted=noted)


def forget(book: FactBook, targets: Sequence[Fact], items: Sequence[str] = (), conversation: str = "") -> FactBook:
    """The book without these facts (matched by id), and with these timeline and profile items of `conversation` forgotten."""
    drop = {f.id for f in targets}
    forgotten = dict(book.forgotten)
    if items:
        forgotten[conversation] = tuple(dict.fromkeys((*forgotten.get(conversation, ()), *items)))[-MAX_FORGOTTEN:]
    return replace(book, facts=tuple(f for f in book.facts if f.id not in drop), forgotten=forgotten)
