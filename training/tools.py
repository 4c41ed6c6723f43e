"""train, merge, quantize, serve, export-gguf: the exact command lines, checked before they run.

xtuner's steps run its own scripts with this interpreter (`python -m training.xtuner_run ...`, see
training/xtuner_run.py for why not the `xtuner` command); lmdeploy is found on PATH (it lives in
its own environment); llama.cpp's converter is a script run with this interpreter.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import TrainingConfig
from training.errors import TrainingError

Command = list[str]
ROOT = Path(__file__).resolve().parents[1]  # the repository: `training.xtuner_run` must import there
INSTALL = {"lmdeploy": "requirements-serve.txt"}  # everything else the steps import: requirements-train.txt


@dataclass(frozen=True)
class Plan:
    """Commands to run in order, what they need (tools on PATH, modules in this Python, a GPU), where."""

    commands: list[Command]
    needs_gpu: bool = True
    tools: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The command lines, shell-quoted, one per line (with the folder and variables they need)."""
        prefix = f"cd {shlex.quote(str(self.cwd))} && " if self.cwd else ""
        prefix += "".join(f"{k}={shlex.quote(v)} " for k, v in self.env.items())
        return "\n".join(prefix + shlex.join(c) for c in self.commands)


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


def is_qlora(config: Path) -> bool:
    """Whether a rendered config loads the base in 4 bits (`quantize = True`; older renders: load_in_4bit)."""
    text = config.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise TrainingError(f"{config}: not a Python config ({exc.msg}, line {exc.lineno})") from None
    for node in tree.body:
        if not isinstance(node, ast.Assign) or [getattr(t, "id", "") for t in node.targets] != ["quantize"]:
            continue
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            return node.value.value
    return "load_in_4bit=True" in text


def xtuner(tool: str, *args: str) -> Command:
    """One of xtuner's scripts (train, pth_to_hf, merge) run by this interpreter."""
    return [sys.executable, "-m", "training.xtuner_run", tool, *args]


def train_plan(config: Path, work_dir: Path, deepspeed: str = "", seed: int | None = None) -> Plan:
    """xtuner's train.py: `CONFIG --work-dir DIR [--deepspeed NAME] [--seed N]`; a GPU only for QLoRA."""
    args = [str(need_file(config, "xtuner config")), "--work-dir", str(work_dir)]
    if deepspeed:
        args += ["--deepspeed", deepspeed]
    if seed is not None:
        args += ["--seed", str(seed)]
    return Plan([xtuner("train", *args)], needs_gpu=is_qlora(config), modules=("xtuner",))


def merge_plan(config: Path, pth: Path, base: str, out: Path, shard: str = "2GB") -> Plan:
    """pth_to_hf (the LoRA adapter) then merge (base + adapter -> a full HF model, safetensors)."""
    adapter = out.with_name(out.name + "-adapter")
    need_file(config, "xtuner config")
    need_file(pth, "checkpoint")
    if base.startswith((".", "/")):
        need_file(Path(base), "base model")
    return Plan([
        xtuner("pth_to_hf", str(config), str(pth), str(adapter)),
        xtuner("merge", base, str(adapter), str(out), "--max-shard-size", shard, "--safe-serialization"),
    ], needs_gpu=is_qlora(config), modules=("xtuner",))


def quantize_plan(model: Path, out: Path, cfg: TrainingConfig, calib_root: Path | None = None) -> Plan:
    """`lmdeploy lite auto_awq` with the calibration settings from [training].

    With `calib_root` (a local copy of lmdeploy's `pileval` set, see training/calibration.py) it runs
    there, offline, so that `datasets` finds the set on disk instead of on the hub.
    """
    need_file(model / "config.json", "merged model (config.json)")
    dataset = "pileval" if calib_root is not None else cfg.calib_dataset
    cmd = [
        "lmdeploy", "lite", "auto_awq", str(model.resolve()), "--calib-dataset", dataset,
        "--calib-samples", str(cfg.calib_samples), "--calib-seqlen", str(cfg.calib_seqlen),
        "--w-bits", str(cfg.w_bits), "--w-group-size", str(cfg.w_group_size), "--work-dir", str(out.resolve()),
    ]
    if calib_root is None:
        return Plan([cmd], tools=("lmdeploy",))
    return Plan([cmd], tools=("lmdeploy",), cwd=calib_root, env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})


def serve_plan(model: Path, cfg: TrainingConfig, model_format: str = "", port: int | None = None) -> Plan:
    """`lmdeploy serve api_server` on TurboMind with prefix caching (AWQ detected from the folder)."""
    need_file(model / "config.json", "model (config.json)")
    fmt = model_format or ("awq" if is_awq(model) else "hf")
    return Plan([[
        "lmdeploy", "serve", "api_server", str(model), "--backend", "turbomind", "--model-format", fmt,
        "--server-port", str(port or cfg.server_port), "--session-len", str(cfg.session_len),
        "--cache-max-entry-count", str(cfg.cache_max_entry_count), "--tp", str(cfg.tp), "--enable-prefix-caching",
    ]], tools=("lmdeploy",))


def run_plan(
    plan: Plan, *, show_only: bool, gpu: Callable[[], bool] = has_gpu, out: Callable[[str], None] = print
) -> int:
    """Print the commands (`--print`), or check tools, modules and GPU and run them in order; the first
    failure stops."""
    if show_only:
        out(plan.text())
        return 0
    for tool in plan.tools:
        if shutil.which(tool) is None:
            extra = INSTALL.get(tool, "requirements-train.txt")
            raise TrainingError(f"'{tool}' is not on PATH: install it from {extra} (pip install -r {extra})")
    for module in plan.modules:
        if importlib.util.find_spec(module) is None:
            extra = INSTALL.get(module, "requirements-train.txt")
            raise TrainingError(f"'{module}' is not installed in {sys.executable}: run the toolkit with the "
                                f"environment built from {extra} (.venv-train/bin/python -m training ...)")
    if plan.needs_gpu and not gpu():
        raise TrainingError("no NVIDIA GPU found (nvidia-smi lists none); run this on a CUDA machine, or render "
                            "the config with --no-quantize to train LoRA without one")
    env = {**os.environ, **plan.env}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for cmd in plan.commands:
        print(f"$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
        code = _run(cmd, plan.cwd, env)
        if code != 0:
            raise TrainingError(f"'{_name(cmd)}' exited with {code}")
    return 0


def _name(cmd: Sequence[str]) -> str:
    """What to call a command in an error: `xtuner train`, `lmdeploy lite auto_awq`, the script's name."""
    if cmd[1:3] == ["-m", "training.xtuner_run"]:
        return f"xtuner {cmd[3]}"
    if cmd[0] == sys.executable:
        return Path(cmd[1]).name
    return shlex.join(cmd[:3])


def _run(cmd: Sequence[str], cwd: Path | None, env: dict[str, str]) -> int:
    """Run one tool with the terminal attached (its own progress output shows)."""
    return subprocess.run(list(cmd), cwd=cwd, env=env, check=False).returncode
