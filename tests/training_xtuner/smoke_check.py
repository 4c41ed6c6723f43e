"""`python -m training smoke --dry-run`: the GPU road's script, run up to the GPU steps (run by .ci/train.sh).

The CPU steps run for real with .venv-train (tiny model, data from the novel, the QLoRA config, the
local AWQ calibration set); the GPU steps are printed, not run. It has not run on a GPU yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmengine.config import Config

from tests.support.shared_data import shared_dir
from training.records import load_lines

ROOT = Path(__file__).resolve().parents[2]
NOVEL = (shared_dir() / "corpora" / "xiyouji.txt").resolve()  # the toolkit resolves links


def test_dry_run_runs_the_cpu_steps_and_prints_the_gpu_ones(tmp_path: Path) -> None:
    work = tmp_path / "smoke"
    done = subprocess.run(
        [sys.executable, "-m", "training", "smoke", "--dry-run", "--work", str(work), "--novel", str(NOVEL),
         "--train-python", sys.executable, "--serve-python", str(tmp_path / "no-serve" / "python")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert f"environment: serve: no interpreter at {tmp_path / 'no-serve' / 'python'}" in out
    for step in ("train (QLoRA, bitsandbytes)", "merge", "quantize (AWQ)", "serve (TurboMind)", "chat (the bot)"):
        assert f"[{step}] (needs the GPU: not run)" in out
    assert f"-m training quantize --config {work / 'config.toml'} {work / 'merged'} --out {work / 'awq'} " \
           f"--calib-file {NOVEL}" in out
    # what the CPU steps made is what the GPU steps would read
    assert (work / "base" / "tokenizer.model").is_file() and (work / "base" / "model.safetensors").is_file()
    assert len(load_lines(work / "data" / "dialogues.jsonl")) > 30
    cfg = Config.fromfile(str(work / "qlora.py"))
    assert cfg.quantize is True and cfg.model.llm.quantization_config.bnb_4bit_quant_type == "nf4"
    calib = work / "awq-calib" / "mit-han-lab" / "pile-val-backup" / "validation.jsonl"
    assert len(load_lines(calib)) > 1000
    report = json.loads((work / "smoke.json").read_text(encoding="utf-8"))
    assert [r["ran"] for r in report] == [True] * 4 + [False] * 5
    assert "| train (QLoRA, bitsandbytes) | not run | - |" in out
