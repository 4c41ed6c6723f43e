"""`prepare qa|dialogues|self-cognition|pretrain`: training data in xtuner's conversation format (or
OpenAI messages, `--format messages`, for LLaMA-Factory and ms-swift)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from training import dialogues, novel_scenes, pieces, qa, selfcog, text
from training.asker import JsonAsker
from training.context import add_endpoint_flags, endpoint_for, persona_for, settings_from
from training.errors import TrainingError
from training.records import FORMATS, JsonlWriter, conversation, system_prompt
from training.shapes import SHORT_CHARS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `prepare` and its four kinds."""
    top = sub.add_parser("prepare", parents=[common], help="build training data (JSONL)")
    kinds = top.add_subparsers(dest="kind", required=True, metavar="KIND")

    p = kinds.add_parser("qa", parents=[common], help="questions about a novel, answered in character")
    p.add_argument("--novel", type=Path, required=True, help="the novel (UTF-8 or GB18030 text)")
    p.add_argument("--persona", default="", help="persona id (default: [training] persona or [bot] default_persona)")
    p.add_argument("--out", type=Path, required=True, help="output JSONL (appended; OUT.state records finished pieces)")
    p.add_argument("--limit", type=int, default=0, help="only the first N pieces")
    p.add_argument("--questions", type=int, default=0, help="questions per piece (default: [training])")
    p.add_argument("--work", default="", help="the work's title for the prompt (default: the file name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _shape_flags(p, "the piece's scene and the character's situation (asked with the questions)",
                 "also one group-chat record per piece, each question from a different named member")
    add_endpoint_flags(p)
    _format_flag(p)
    p.set_defaults(func=run_qa)

    p = kinds.add_parser("dialogues", parents=[common], help="a character's lines from scenes as conversations")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="scene text (Name:「line」) or JSONL turns")
    source.add_argument("--novel", type=Path, help="the novel itself: its quoted speech (悟空道：“……”)")
    p.add_argument("--character", required=True, help="the speaker whose lines become outputs")
    p.add_argument("--alias", action="append", default=[],
                   help="another name the character speaks under (with --novel the card's aliases count too)")
    p.add_argument("--persona", default="", help="persona id for the system prompt")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-turns", type=int, default=8, help="split longer scenes into conversations of N turns")
    p.add_argument("--limit", type=int, default=0, help="only the first N scenes")
    _shape_flags(p, "the scene's setting and the character's situation",
                 "scenes where two or more others speak become group chats: every line as `Name: text`")
    _format_flag(p)
    p.set_defaults(func=run_dialogues)

    p = kinds.add_parser("self-cognition", parents=[common], help="identity questions answered in character")
    p.add_argument("--persona", default="")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=40, help="templated records to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--paraphrase", type=int, default=0, metavar="K",
                   help="also ask the model for K paraphrases (with answers) of each identity question")
    add_endpoint_flags(p)
    _format_flag(p)
    p.set_defaults(func=run_self_cognition)

    p = kinds.add_parser("pretrain", parents=[common], help="plain text chunks for incremental pretraining")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--chars", type=int, default=0, help="chunk size (default: [training] pretrain_chars)")
    p.add_argument("--overlap", type=int, default=-1, help="overlap (default: [training] pretrain_overlap)")
    _format_flag(p)
    p.set_defaults(func=run_pretrain)


def _format_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="xtuner",
                   help="xtuner's conversation format (default) or OpenAI messages (LLaMA-Factory, ms-swift)")


def _shape_flags(p: argparse.ArgumentParser, circumstances: str, group: str) -> None:
    p.add_argument("--circumstances", action="store_true", help=f"given circumstances in the system prompt: {circumstances}")
    p.add_argument("--group", action="store_true", help=group)
    p.add_argument("--short", type=int, nargs="?", const=SHORT_CHARS, default=0, metavar="N",
                   help=f"also short-reply samples: the reply's leading sentences within N characters (default {SHORT_CHARS})")


def _read(path: Path) -> str:
    if not path.is_file():
        raise TrainingError(f"{path}: file not found")
    return text.read_text(path.read_bytes())


def run_qa(args: argparse.Namespace) -> int:
    """Generate QA records, resuming where an earlier run stopped."""
    settings = settings_from(args)
    cfg = settings.training
    persona = persona_for(settings, args.persona)
    cut = pieces.cut_pieces(_read(args.novel), cfg.piece_chars, persona.card.knowledge.chapter_pattern)
    if args.limit > 0:
        cut = cut[: args.limit]
    if not cut:
        raise TrainingError(f"{args.novel}: no text to cut into pieces")

    async def go() -> qa.QAResult:
        asker = JsonAsker(
            endpoint_for(settings, args), concurrency=args.concurrency or cfg.concurrency, retries=cfg.retries,
            backoff=cfg.retry_backoff,
        )
        try:
            await asker.check()
            return await qa.prepare_qa(
                cut, persona, asker, args.out, questions=args.questions or cfg.questions_per_piece,
                work=args.work or args.novel.stem, progress=not args.no_progress, fmt=args.fmt,
                shapes=qa.QAShapes(circumstances=args.circumstances, group=args.group, short=max(0, args.short)),
            )
        finally:
            await asker.close()

    result = asyncio.run(go())
    print(qa.summary(result, args.out))
    if result.failed:
        print(f"error: {result.failed} piece(s) failed; rerun the same command to retry only those", file=sys.stderr)
        return 1
    return 0


def run_dialogues(args: argparse.Namespace) -> int:
    """Convert scenes (from a scene file or from the novel's prose) to multi-turn records."""
    settings = settings_from(args)
    persona = persona_for(settings, args.persona)
    source = args.input or args.novel
    if args.novel is not None:
        names = [args.character, *args.alias, *persona.card.aliases]
        scenes = novel_scenes.novel_scenes(
            _read(args.novel), names, persona.card.knowledge.chapter_pattern, speaker=args.character
        )
    else:
        scenes = dialogues.read_scenes(args.input)
    if args.limit > 0:
        scenes = scenes[: args.limit]
    shapes = dialogues.Shapes(max(1, args.max_turns), args.circumstances, args.group, max(0, args.short))
    records = dialogues.dialogue_records(scenes, {args.character, *args.alias}, system_prompt(persona), shapes, persona)
    if not records:
        raise TrainingError(f"{source}: no lines of '{args.character}' answering anyone")
    with JsonlWriter(args.out, append=False, fmt=args.fmt) as writer:
        writer.write_all(records)
    _report(args.out, scenes=len(scenes), records=writer.written, duplicates=writer.skipped)
    return 0


def run_self_cognition(args: argparse.Namespace) -> int:
    """Templated (and optionally model-paraphrased) identity records."""
    settings = settings_from(args)
    persona = persona_for(settings, args.persona)
    pairs = selfcog.templated_pairs(persona, args.n, args.seed)
    if args.paraphrase > 0:

        async def go() -> list[tuple[str, str]]:
            conc = args.concurrency or settings.training.concurrency
            asker = JsonAsker(endpoint_for(settings, args), concurrency=conc, retries=settings.training.retries,
                               backoff=settings.training.retry_backoff)
            try:
                await asker.check()
                return await selfcog.paraphrased_pairs(asker, persona, args.paraphrase)
            finally:
                await asker.close()

        pairs += asyncio.run(go())
    with JsonlWriter(args.out, append=False, fmt=args.fmt) as writer:
        writer.write_all(selfcog.self_cognition_records(persona, pairs))
    _report(args.out, records=writer.written, duplicates=writer.skipped)
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    """Overlapping chunks as single-turn records with empty input and no system prompt."""
    cfg = settings_from(args).training
    size = args.chars or cfg.pretrain_chars
    overlap = args.overlap if args.overlap >= 0 else cfg.pretrain_overlap
    if overlap >= size:
        raise TrainingError(f"overlap {overlap} must be smaller than the chunk size {size}")
    chunks = text.chunks(_read(args.input), size, overlap)
    with JsonlWriter(args.out, append=False, fmt=args.fmt) as writer:
        writer.write_all(conversation("", [("", c)]) for c in chunks)
    _report(args.out, chunks=len(chunks), records=writer.written, duplicates=writer.skipped)
    return 0


def _report(out: Path, **counts: int) -> None:
    print(json.dumps({"out": str(out), **counts}, ensure_ascii=False))
