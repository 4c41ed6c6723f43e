"""`python -m bench COMMAND`: the load benchmarks, and the older bench_*.py scripts by name."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {"core": "bench_core.py", "knowledge": "bench_knowledge.py", "voice": "bench_voice.py"}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; the script ones get the rest of the command line as their own."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if argv and argv[0] in SCRIPTS:
        script = HERE / SCRIPTS[argv[0]]
        sys.argv = [str(script), *argv[1:]]
        runpy.run_path(str(script), run_name="__main__")
        return 0
    from bench import check, flood, memory, model, pipeline, qq, runaway, scene, stop, web

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pipeline.register(sub)
    model.register(sub)
    check.register(sub)
    qq.register(sub)
    flood.register(sub)
    memory.register(sub)
    runaway.register(sub)
    scene.register(sub)
    stop.register(sub)
    web.register(sub)
    for name, file in SCRIPTS.items():
        sub.add_parser(name, help=f"run bench/{file} (its own options follow)")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
