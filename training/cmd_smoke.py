"""`tiny-model` and `smoke`: a model to run the road with, and the GPU road in one timed run."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from training import smoke, tiny
from training.context import settings_from


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `tiny-model` and `smoke`."""
    p = sub.add_parser("tiny-model", parents=[common], help="a tiny random Llama + tokenizer for smoke runs")
    p.add_argument("--out", type=Path, required=True, help="the model folder to write")
    p.add_argument("--corpus", type=Path, nargs="+", required=True, help="text files (or folders of *.txt)")
    p.add_argument("--chars", type=int, default=150_000, help="characters of each file to train the tokenizer on")
    spec = tiny.TinySpec()
    for name in ("vocab", "hidden", "layers", "heads", "intermediate", "context", "seed"):
        p.add_argument(f"--{name}", type=int, default=getattr(spec, name))
    p.set_defaults(func=run_tiny)

    p = sub.add_parser("smoke", parents=[common], help="the GPU road end to end, timed (--dry-run: without a GPU)")
    p.add_argument("--work", type=Path, default=Path("work_dirs/smoke"), help="folder for everything it writes")
    p.add_argument("--novel", type=Path, required=True, help="the novel (data, tokenizer, AWQ calibration)")
    p.add_argument("--persona", default="wukong")
    p.add_argument("--character", default="孙悟空", help="the character's name in the novel")
    p.add_argument("--base", type=Path, default=None, help="a local chat model instead of the tiny one")
    p.add_argument("--template", default="", help="xtuner template (default: qwen_chat; internlm2_chat with --base)")
    p.add_argument("--port", type=int, default=23339)
    for env, default in smoke.default_pythons().items():
        p.add_argument(f"--{env}-python", type=Path, default=default, help=f"interpreter of the {env} environment")
    p.add_argument("--dry-run", action="store_true", help="run the CPU steps, check the rest, print the GPU steps")
    p.set_defaults(func=run_smoke)


def run_tiny(args: argparse.Namespace) -> int:
    """Build the tokenizer and the model."""
    settings_from(args)  # the config must be valid like for every command
    spec = tiny.TinySpec(args.vocab, args.hidden, args.layers, args.heads, args.intermediate, args.context, args.seed)
    start = time.monotonic()
    summary = tiny.build(args.out, args.corpus, spec, args.chars)
    print(json.dumps({**summary, "seconds": round(time.monotonic() - start, 1)}, ensure_ascii=False))
    return 0


def run_smoke(args: argparse.Namespace) -> int:
    """Run the road and print the timings table."""
    pythons = {env: getattr(args, f"{env}_python").absolute() for env in smoke.default_pythons()}  # not resolved:
    # a venv's python is a link to the base interpreter, and only the link finds the venv
    road = smoke.Road(args.work.resolve(), args.novel.resolve(), args.persona, args.character,
                      args.base.resolve() if args.base else None, args.template, args.port, pythons)
    results = smoke.run(road, dry_run=args.dry_run)
    print(smoke.table(results))
    return 0
