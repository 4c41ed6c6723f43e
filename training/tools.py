"""train, merge, quantize, serve: the exact xtuner/lmdeploy command lines, checked before they run."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import TrainingConfig
from training.errors import TrainingError

Command = list[str]


@dataclass(frozen=True)
class Plan:
    """Commands to run in order, the tools they need, and whether they need a GPU."""

    commands: list[Command]
    needs_gpu: bool = True

    def text(self) -> str:
        """The command lines, shell-quoted, one per line."""
        return "\n".join(shlex.join(c) for c in self.commands)


def has_gpu() -> bool:
    """True when `nvidia-smi -L` lists a GPU (no torch import: the bot's venv need not have CUDA)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def need_file(path: Path, what: str) -> Path:
    """The path if it exists, else a one-line TrainingError naming it."""
    if not path.exists():
        raise TrainingError(f"{what} not found: {path}")
    return path


def latest_checkpoint(work_dir: Path) -> Path:
    """The checkpoint xtuner wrote last: `last_checkpoint` names it, else the newest *.pth."""
    marker = work_dir / "last_checkpoint"
    if marker.is_file():
        named = Path(marker.read_text(encoding="utf-8").strip())
        if named.exists():
            return named
    found = sorted(work_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise TrainingError(f"no checkpoint (*.pth) in {work_dir}; train first or pass --pth")
    return found[-1]


def is_awq(model: Path) -> bool:
    """True when the model folder holds AWQ weights (lmdeploy writes quant_method awq into config.json)."""
    config = model / "config.json"
    return config.is_file() and '"awq"' in config.read_text(encoding="utf-8").lower()


def train_plan(config: Path, work_dir: Path, deepspeed: str = "") -> Plan:
    """`xtuner train CONFIG --work-dir DIR [--deepspeed NAME]`."""
    cmd = ["xtuner", "train", str(need_file(config, "xtuner config")), "--work-dir", str(work_dir)]
    if deepspeed:
        cmd += ["--deepspeed", deepspeed]
    return Plan([cmd])


def merge_plan(config: Path, pth: Path, base: str, out: Path, shard: str = "2GB") -> Plan:
    """pth_to_hf (the LoRA adapter) then merge (base + adapter -> a full HF model)."""
    adapter = out.with_name(out.name + "-adapter")
    need_file(config, "xtuner config")
    need_file(pth, "checkpoint")
    if base.startswith((".", "/")):
        need_file(Path(base), "base model")
    return Plan([
        ["xtuner", "convert", "pth_to_hf", str(config), str(pth), str(adapter)],
        ["xtuner", "convert", "merge", base, str(adapter), str(out), "--max-shard-size", shard],
    ])


def quantize_plan(model: Path, out: Path, cfg: TrainingConfig) -> Plan:
    """`lmdeploy lite auto_awq` with the calibration settings from [training]."""
    need_file(model / "config.json", "merged model (config.json)")
    return Plan([[
        "lmdeploy", "lite", "auto_awq", str(model), "--calib-dataset", cfg.calib_dataset,
        "--calib-samples", str(cfg.calib_samples), "--calib-seqlen", str(cfg.calib_seqlen),
        "--w-bits", str(cfg.w_bits), "--w-group-size", str(cfg.w_group_size), "--work-dir", str(out),
    ]])


def serve_plan(model: Path, cfg: TrainingConfig, model_format: str = "", port: int | None = None) -> Plan:
    """`lmdeploy serve api_server` on TurboMind with prefix caching (AWQ detected from the folder)."""
    need_file(model / "config.json", "model (config.json)")
    fmt = model_format or ("awq" if is_awq(model) else "hf")
    return Plan([[
        "lmdeploy", "serve", "api_server", str(model), "--backend", "turbomind", "--model-format", fmt,
        "--server-port", str(port or cfg.server_port), "--session-len", str(cfg.session_len),
        "--cache-max-entry-count", str(cfg.cache_max_entry_count), "--tp", str(cfg.tp), "--enable-prefix-caching",
    ]])


def run_plan(
    plan: Plan, *, show_only: bool, gpu: Callable[[], bool] = has_gpu, out: Callable[[str], None] = print
) -> int:
    """Print the commands (`--print`), or check tools and GPU and run them in order; the first failure stops."""
    if show_only:
        out(plan.text())
        return 0
    for tool in dict.fromkeys(c[0] for c in plan.commands):
        if shutil.which(tool) is None:
            extra = "requirements-train.txt" if tool == "xtuner" else "requirements-serve.txt"
            raise TrainingError(f"'{tool}' is not on PATH: install it from {extra} (pip install -r {extra})")
    if plan.needs_gpu and not gpu():
        raise TrainingError("no NVIDIA GPU found (nvidia-smi lists none); run this on a CUDA machine")
    for cmd in plan.commands:
        print(f"$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
        code = _run(cmd)
        if code != 0:
            raise TrainingError(f"'{shlex.join(cmd[:3])}' exited with {code}")
    return 0


def _run(cmd: Sequence[str]) -> int:
    """Run one tool with the terminal attached (its own progress output shows)."""
    return subprocess.run(list(cmd), check=False).returncode
