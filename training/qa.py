"""`prepare qa`: questions about each piece of a novel, answered in character from that piece."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from persona.card import Persona
from training.asker import JsonAsker, strings
from training.errors import TrainingError
from training.pieces import Piece
from training.records import JsonlWriter, Record, conversation, system_prompt

PROMPTS = {
    "zh": (
        """下面是小说《{work}》中的一段原文（{title}）。请就这段原文提出{n}个不同的问题，\
问题要像一位读者在聊天时会问{name}的那样自然，答案必须能在这段原文中找到。
只输出JSON，格式：{{"questions": ["问题1", "问题2"]}}

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
phrased the way a reader chatting with {name} would ask; each answer must be found in the passage.
Output JSON only, as {{"questions": ["question 1", "question 2"]}}

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


async def piece_pairs(asker: JsonAsker, persona: Persona, piece: Piece, n: int, work: str) -> list[tuple[str, str]]:
    """Ask for n questions about the piece, then for in-character answers grounded in it."""
    lang = "zh" if persona.card.language.startswith("zh") else "en"
    question_prompt, answer_prompt = PROMPTS[lang]
    title = piece.title or _START[lang]
    q_prompt = question_prompt.format(work=work, title=title, n=n, name=persona.name, text=piece.text)
    questions = await asker.ask(
        [{"role": "user", "content": q_prompt}], lambda v: strings(v, "questions"), temperature=0.8
    )
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
    return list(zip(questions, got, strict=True))


async def prepare_qa(
    pieces: list[Piece], persona: Persona, asker: JsonAsker, out: Path, *, questions: int, work: str,
    progress: bool = True,
) -> QAResult:
    """Generate QA records for every piece not yet finished; each finished piece is recorded at once."""
    result = QAResult(pieces=len(pieces))
    state = DoneState(state_path(out))
    todo = [p for p in dict((p.key, p) for p in pieces).values() if p.key not in state.done]
    result.done_before = len({p.key for p in pieces}) - len(todo)
    system = system_prompt(persona)
    with JsonlWriter(out) as writer, tqdm(
        total=len(todo), desc="qa", unit="piece", file=sys.stderr, disable=not progress
    ) as bar:

        # whole pieces at a time: an interruption then loses at most `concurrency` half-asked pieces
        gate = asyncio.Semaphore(asker.concurrency)

        async def one(piece: Piece) -> tuple[Piece, list[tuple[str, str]] | None]:
            try:
                async with gate:
                    return piece, await piece_pairs(asker, persona, piece, questions, work)
            except TrainingError as exc:
                tqdm.write(f"piece {piece.key[:10]} ({piece.title or 'prelude'}): {exc}", file=sys.stderr)
                return piece, None

        for next_done in asyncio.as_completed([one(p) for p in todo]):
            piece, pairs = await next_done
            bar.update(1)
            result.asked += 1
            if pairs is None:
                result.failed += 1
                continue
            records: list[Record] = [conversation(system, [pair]) for pair in pairs]
            result.records += writer.write_all(records)
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
