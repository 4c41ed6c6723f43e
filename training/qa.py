"""`prepare qa`: questions about each piece of a novel, answered in character from that piece.

Options add the shapes of training/shapes.py: the piece's scene and the character's situation in it
(asked of the model with the questions) as given circumstances, a group-chat record per piece whose
questions come from different named members, and short-reply samples.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from persona.card import Persona
from training.asker import JsonAsker, strings
from training.errors import TrainingError
from training.pieces import Piece
from training.records import JsonlWriter, Record, conversation, system_prompt
from training.shapes import Circumstances, group_text, lang_of, short_reply, with_circumstances

PROMPTS = {
    "zh": (
        """下面是小说《{work}》中的一段原文（{title}）。请就这段原文提出{n}个不同的问题，\
问题要像一位读者在聊天时会问{name}的那样自然，答案必须能在这段原文中找到。{extra}
只输出JSON，格式：{{"questions": ["问题1", "问题2"]{shape}}}

原文：
{text}""",
        """你要扮演{name}。{persona}

下面是小说中的一段原文（{title}）：
{text}

请以{name}的身份、语气和第一人称，依据这段原文回答下面每个问题，不要编造原文以外的情节，不要提及“原文”。
问题：
{questions}

只输出JSON，格式：{{"answers": ["对问题1的回答", "对问题2的回答"]}}，answers 的数量必须与问题数量相同。""",
    ),
    "en": (
        """Below is a passage from the novel "{work}" ({title}). Write {n} different questions about it, \
phrased the way a reader chatting with {name} would ask; each answer must be found in the passage.{extra}
Output JSON only, as {{"questions": ["question 1", "question 2"]{shape}}}

Passage:
{text}""",
        """You play {name}. {persona}

Below is a passage from the novel ({title}):
{text}

Answer each question below as {name}, in first person and in character, using only what the passage says; \
do not mention "the passage".
Questions:
{questions}

Output JSON only, as {{"answers": ["answer to question 1", "answer to question 2"]}}, one answer per question.""",
    ),
}
_START = {"zh": "开篇", "en": "opening"}
CIRCUMSTANCES = {
    "zh": ("\n另外用一句话写出这段原文的场景（时间、地点、正在发生的事），再用一句话写出{name}此刻的处境和心情"
           "（{name}不在场时写空字符串）。", ', "scene": "……", "situation": "……"'),
    "en": ("\nAlso write the scene of the passage in one sentence (time, place, what is happening), and {name}'s "
           "situation and mood at this point in one sentence (an empty string when {name} is not there).",
           ', "scene": "...", "situation": "..."'),
}
ASKERS = {"zh": ("小李", "阿明", "王姐", "老张", "小雨", "阿杰", "小周", "大刘"),
          "en": ("Alex", "Sam", "Jordan", "Lee", "Robin", "Casey", "Morgan", "Drew")}


@dataclass(frozen=True)
class QAShapes:
    """Which sample shapes `prepare qa` writes besides one single-turn record per question."""

    circumstances: bool = False
    group: bool = False
    short: int = 0


@dataclass(frozen=True)
class PieceQA:
    """What the model gave for one piece: (question, answer) pairs and, when asked, its circumstances."""

    pairs: list[tuple[str, str]]
    circumstances: Circumstances = field(default_factory=Circumstances)


@dataclass
class QAResult:
    """What one run did."""

    pieces: int = 0
    done_before: int = 0
    asked: int = 0
    failed: int = 0
    records: int = 0
    duplicates: int = 0
    requests: int = 0


class DoneState:
    """The sidecar `OUT.state`: one finished piece hash per line, appended as pieces finish."""

    def __init__(self, path: Path):
        self.path = path
        self.done: set[str] = set()
        if path.is_file():
            self.done = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}

    def mark(self, key: str) -> None:
        """Record a finished piece (after its records are on disk)."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(key + "\n")
        self.done.add(key)


def state_path(out: Path) -> Path:
    """Where the resume state of OUT lives."""
    return out.with_name(out.name + ".state")


async def piece_pairs(
    asker: JsonAsker, persona: Persona, piece: Piece, n: int, work: str, circumstances: bool = False
) -> PieceQA:
    """Ask for n questions about the piece (and its circumstances), then for in-character answers."""
    lang = lang_of(persona)
    question_prompt, answer_prompt = PROMPTS[lang]
    title = piece.title or _START[lang]
    extra, shape = CIRCUMSTANCES[lang] if circumstances else ("", "")
    q_prompt = question_prompt.format(
        work=work, title=title, n=n, name=persona.name, text=piece.text, extra=extra.format(name=persona.name),
        shape=shape,
    )

    def asked(value: Any) -> tuple[list[str], Circumstances]:
        found = strings(value, "questions")
        if not circumstances:
            return found, Circumstances()
        scene, situation = value.get("scene", ""), value.get("situation", "")
        if not isinstance(scene, str) or not isinstance(situation, str):
            raise ValueError("'scene' and 'situation' must be strings")
        return found, Circumstances(scene.strip(), situation.strip())

    questions, circ = await asker.ask([{"role": "user", "content": q_prompt}], asked, temperature=0.8)
    questions = list(dict.fromkeys(questions))[:n]
    numbered = "\n".join(f"{i + 1}. {q}" for i, q in enumerate(questions))
    a_prompt = answer_prompt.format(
        name=persona.name, persona=persona.render(persona.card.personality.strip()), title=title,
        text=piece.text, questions=numbered,
    )

    def answers(value: Any) -> list[str]:
        found = strings(value, "answers")
        if len(found) != len(questions):
            raise ValueError(f"{len(found)} answers for {len(questions)} questions")
        return found

    got = await asker.ask([{"role": "user", "content": a_prompt}], answers, temperature=0.7)
    return PieceQA(list(zip(questions, got, strict=True)), circ)


def piece_records(found: PieceQA, persona: Persona, system: str, shapes: QAShapes, key: str) -> list[Record]:
    """One single-turn record per question; with `shapes`, the circumstances in the system prompt, a
    group-chat record with a different named asker per question, and short-reply samples."""
    if shapes.circumstances:
        system = with_circumstances(system, found.circumstances, persona)
    records: list[Record] = [conversation(system, [pair]) for pair in found.pairs]
    if shapes.group and len(found.pairs) >= 2:
        names = ASKERS[lang_of(persona)]
        first = int(key[:8], 16) % len(names)
        turns = [(group_text([(names[(first + i) % len(names)], q)]), a) for i, (q, a) in enumerate(found.pairs)]
        records.append(conversation(system, turns))
    if shapes.short > 0:
        for question, answer in found.pairs:
            short = short_reply(answer, shapes.short)
            if short and short != answer:
                records.append(conversation(system, [(question, short)]))
    return records


async def prepare_qa(
    pieces: list[Piece], persona: Persona, asker: JsonAsker, out: Path, *, questions: int, work: str,
    progress: bool = True, shapes: QAShapes = QAShapes(), fmt: str = "xtuner",
) -> QAResult:
    """Generate QA records for every piece not yet finished; each finished piece is recorded at once."""
    result = QAResult(pieces=len(pieces))
    state = DoneState(state_path(out))
    todo = [p for p in dict((p.key, p) for p in pieces).values() if p.key not in state.done]
    result.done_before = len({p.key for p in pieces}) - len(todo)
    system = system_prompt(persona)
    with JsonlWriter(out, fmt=fmt) as writer, tqdm(
        total=len(todo), desc="qa", unit="piece", file=sys.stderr, disable=not progress
    ) as bar:

        # whole pieces at a time: an interruption then loses at most `concurrency` half-asked pieces
        gate = asyncio.Semaphore(asker.concurrency)

        async def one(piece: Piece) -> tuple[Piece, PieceQA | None]:
            try:
                async with gate:
                    return piece, await piece_pairs(asker, persona, piece, questions, work, shapes.circumstances)
            except TrainingError as exc:
                tqdm.write(f"piece {piece.key[:10]} ({piece.title or 'prelude'}): {exc}", file=sys.stderr)
                return piece, None

        for next_done in asyncio.as_completed([one(p) for p in todo]):
            piece, found = await next_done
            bar.update(1)
            result.asked += 1
            if found is None:
                result.failed += 1
                continue
            result.records += writer.write_all(piece_records(found, persona, system, shapes, piece.key))
            state.mark(piece.key)
        result.duplicates = writer.skipped
    result.requests = asker.requests
    return result


def summary(result: QAResult, out: Path) -> str:
    """One line for the terminal."""
    return json.dumps(
        {"out": str(out), "pieces": result.pieces, "already_done": result.done_before, "asked": result.asked,
         "failed": result.failed, "records": result.records, "duplicates": result.duplicates,
         "requests": result.requests},
        ensure_ascii=False,
    )
