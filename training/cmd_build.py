"""`validate`, `config`, `train`, `merge`, `quantize`, `serve`, `export-gguf`: from data files to a served model."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from training import calibration, gguf, recipe, tools, validate
from training.context import persona_for, settings_from
from training.errors import TrainingError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands after `prepare`."""
    p = sub.add_parser("validate", parents=[common], help="check conversation files; exit 1 on schema errors")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder or tokenizer.json for token counts")
    p.add_argument("--max-length", type=int, default=0, help="warn above N tokens (default: [training] max_length)")
    p.set_defaults(func=run_validate)

    p = sub.add_parser("config", parents=[common], help="render the xtuner (Q)LoRA config")
    p.add_argument("--out", type=Path, required=True, help="the config file to write (CONFIG.py)")
    p.add_argument("--base", default="", help="base model id or local folder (default: [training] base_model)")
    p.add_argument("--data", type=Path, nargs="*", default=[], help="conversation JSONL files")
    p.add_argument("--pretrain", type=Path, nargs="*", default=[], help="pretraining JSONL files (no template)")
    p.add_argument("--persona", default="", help="persona for SYSTEM and the evaluation prompts")
    p.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=None,
                   help="QLoRA, the base loaded in 4 bits (needs an NVIDIA GPU to train); --no-quantize: LoRA on "
                        "the full weights (trains on CPU too). Default: QLoRA when nvidia-smi lists a GPU")
    p.set_defaults(func=run_config)

    p = sub.add_parser("train", parents=[common], help="xtuner's training loop (QLoRA: GPU; LoRA: GPU or CPU)")
    p.add_argument("xtuner_config", type=Path, metavar="CONFIG.py")
    p.add_argument("--work-dir", type=Path, default=None, help="default: [training] work_dir")
    p.add_argument("--deepspeed", default="", help="e.g. deepspeed_zero2 (needs deepspeed installed)")
    p.add_argument("--seed", type=int, default=None, help="random seed (xtuner train --seed)")
    _print_flag(p, run_train)

    p = sub.add_parser("merge", parents=[common], help="xtuner pth_to_hf + merge (QLoRA: GPU; LoRA: CPU too)")
    p.add_argument("xtuner_config", type=Path, metavar="CONFIG.py")
    p.add_argument("--out", type=Path, required=True, help="merged model folder (the adapter goes to OUT-adapter)")
    p.add_argument("--pth", type=Path, default=None, help="checkpoint (default: the last one in the work dir)")
    p.add_argument("--work-dir", type=Path, default=None, help="default: [training] work_dir")
    p.add_argument("--base", default="", help="base model (default: [training] base_model)")
    p.add_argument("--max-shard-size", default="2GB")
    _print_flag(p, run_merge)

    p = sub.add_parser("quantize", parents=[common], help="lmdeploy lite auto_awq, 4-bit weights (GPU)")
    p.add_argument("model", type=Path, metavar="MODEL_DIR", help="the merged model")
    p.add_argument("--out", type=Path, required=True, help="the AWQ model folder")
    p.add_argument("--calib-file", default=None,
                   help="a local text or JSONL file to calibrate on (no hub; default: [training] calib_file)")
    _print_flag(p, run_quantize)

    p = sub.add_parser("serve", parents=[common], help="lmdeploy api_server on TurboMind (GPU)")
    p.add_argument("model", type=Path, metavar="MODEL_DIR", help="AWQ or merged model")
    p.add_argument("--port", type=int, default=0, help="default: [training] server_port")
    p.add_argument("--model-format", choices=["awq", "hf"], default="", help="default: detected from the folder")
    _print_flag(p, run_serve)

    p = sub.add_parser("export-gguf", parents=[common], help="the merged model as GGUF (llama.cpp, Ollama; CPU)")
    p.add_argument("model", type=Path, metavar="MODEL_DIR", help="the merged model (not the AWQ one)")
    p.add_argument("--out", type=Path, required=True, help="the .gguf file to write")
    p.add_argument("--outtype", choices=["f32", "f16", "bf16", "q8_0"], default="",
                   help="weight type (default: [training] gguf_outtype)")
    p.add_argument("--converter", default="", help="convert_hf_to_gguf.py or a llama.cpp folder "
                   "(default: [training] gguf_converter, else llama.cpp/ in this environment)")
    _print_flag(p, run_export)


def _print_flag(p: argparse.ArgumentParser, func: object) -> None:
    p.add_argument("--print", dest="show_only", action="store_true", help="show the command lines, run nothing")
    p.set_defaults(func=func)


def run_validate(args: argparse.Namespace) -> int:
    """Print the report; 1 when any record breaks the schema."""
    cfg = settings_from(args).training
    counter = None
    if args.tokenizer is not None:
        try:
            counter = validate.token_counter(args.tokenizer)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"tokenizer: {exc}") from None
    report = validate.validate(args.files, counter, args.max_length or cfg.max_length)
    print(validate.render(report))
    return 0 if report.ok else 1


def run_config(args: argparse.Namespace) -> int:
    """Write the config; data files must exist and pass the schema check first."""
    settings = settings_from(args)
    if not args.data and not args.pretrain:
        raise TrainingError("give --data and/or --pretrain files")
    report = validate.validate([*args.data, *args.pretrain])
    if not report.ok:
        raise TrainingError(f"{report.errors[0]} (run `python -m training validate` for the full report)")
    if report.formats.get("messages"):
        raise TrainingError("xtuner reads its conversation format: write the data without --format messages "
                            "(the messages format is for LLaMA-Factory and ms-swift)")
    if not settings.training.prompt_template.isidentifier():
        raise TrainingError(f"[training] prompt_template: not a template name: {settings.training.prompt_template!r}")
    persona = persona_for(settings, args.persona)
    quantize = tools.has_gpu() if args.quantize is None else args.quantize
    made = recipe.make_recipe(settings.training, persona, args.data, args.pretrain, args.base or None, quantize)
    text = recipe.render(made)
    ast.parse(text)  # a broken render must fail here, not hours later on the GPU machine
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    kind = "QLoRA (4-bit base, NVIDIA GPU)" if quantize else "LoRA (full-precision base; GPU or CPU)"
    why = "" if args.quantize is not None else (" - a GPU was found" if quantize else
                                                 " - no GPU found; --quantize renders QLoRA for a GPU machine")
    print(f"wrote {args.out} ({report.records} records; base {made.base}; {kind}{why})")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """xtuner train."""
    cfg = settings_from(args).training
    plan = tools.train_plan(args.xtuner_config, args.work_dir or cfg.work_dir, args.deepspeed, args.seed)
    return tools.run_plan(plan, show_only=args.show_only)


def run_merge(args: argparse.Namespace) -> int:
    """pth_to_hf + merge."""
    cfg = settings_from(args).training
    pth = args.pth or tools.latest_checkpoint(args.work_dir or cfg.work_dir)
    plan = tools.merge_plan(args.xtuner_config, pth, args.base or cfg.base_model, args.out, args.max_shard_size)
    return tools.run_plan(plan, show_only=args.show_only)


def run_quantize(args: argparse.Namespace) -> int:
    """lmdeploy lite auto_awq, on a local calibration set when a calibration file is given."""
    cfg = settings_from(args).training
    calib = args.calib_file if args.calib_file is not None else cfg.calib_file
    root = args.out.resolve().with_name(args.out.name + "-calib") if calib else None
    plan = tools.quantize_plan(args.model, args.out, cfg, root)
    if root is not None and not args.show_only:
        written = calibration.write_calibration(Path(calib), root)
        print(f"calibration set: {written} (from {calib})")
    return tools.run_plan(plan, show_only=args.show_only)


def run_serve(args: argparse.Namespace) -> int:
    """lmdeploy serve api_server."""
    cfg = settings_from(args).training
    plan = tools.serve_plan(args.model, cfg, args.model_format, args.port or None)
    return tools.run_plan(plan, show_only=args.show_only)


def run_export(args: argparse.Namespace) -> int:
    """llama.cpp's convert_hf_to_gguf.py on the merged model."""
    cfg = settings_from(args).training
    converter = gguf.find_converter(args.converter or cfg.gguf_converter)
    plan = gguf.export_plan(args.model, args.out, converter, args.outtype or cfg.gguf_outtype)
    if not args.show_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    return tools.run_plan(plan, show_only=args.show_only)
