"""The GPU smoke script's parts that run anywhere: its steps, its checks, its GPU memory sampler, its table."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from training.errors import TrainingError
from training.smoke import CHAT_LINES, GpuSampler, Result, Road, check_chat, steps, table, wait_for_server, write_config


def _road(tmp_path: Path, base: Path | None = None) -> Road:
    pythons = {env: tmp_path / env / "python" for env in ("train", "serve", "bot")}
    return Road(tmp_path / "w", tmp_path / "novel.txt", base=base, pythons=pythons)


def test_steps_use_each_environment_and_the_gpu_where_needed(tmp_path: Path) -> None:
    road = _road(tmp_path)
    write_config(road)
    plan = steps(road)
    assert [(s.name, s.python.parent.name, s.gpu) for s in plan] == [
        ("tiny model", "train", False), ("data: dialogues", "train", False), ("data: self-cognition", "train", False),
        ("config (QLoRA)", "train", False), ("train (QLoRA, bitsandbytes)", "train", True), ("merge", "train", True),
        ("quantize (AWQ)", "serve", True), ("serve (TurboMind)", "serve", True), ("chat (the bot)", "bot", True),
    ]
    assert plan[-1].stdin == "\n".join(CHAT_LINES) + "\n" and plan[-2].background
    text = road.config.read_text(encoding="utf-8")
    assert 'prompt_template = "qwen_chat"' in text and 'server = "lmdeploy"' in text and "port = 23339" in text
    with_base = _road(tmp_path, base=tmp_path / "internlm2_5-1_8b-chat")
    write_config(with_base)
    assert steps(with_base)[0].name == "data: dialogues"  # no tiny model
    assert 'prompt_template = "internlm2_chat"' in with_base.config.read_text(encoding="utf-8")


def test_check_chat_wants_the_model_and_clean_text(tmp_path: Path) -> None:
    log = tmp_path / "chat.log"
    log.write_text("reply by model m (3 chars)\n" * 3, encoding="utf-8")
    check_chat("俺老孙。\n来也。\n好！\n", log)
    with pytest.raises(TrainingError, match="2 of 3 lines answered by the model"):
        log.write_text("reply by model m (3 chars)\n" * 2, encoding="utf-8")
        check_chat("俺老孙。\n来也。\n好！\n", log)
    log.write_text("reply by model m (3 chars)\n" * 3, encoding="utf-8")
    with pytest.raises(TrainingError, match="template tokens"):
        check_chat("俺老孙。<|im_end|>\n来也。\n好！\n", log)


def test_gpu_sampler_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 5120\n", encoding="utf-8")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    with GpuSampler() as gpu:
        pass
    assert gpu.peak == 5120
    rows = table([Result("train", 12.34, gpu.peak), Result("serve", ran=False)]).splitlines()
    assert rows[2:] == ["| train | 12.3 | 5120 |", "| serve | not run | - |"]


def test_a_server_that_dies_is_reported() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    proc.wait()
    with pytest.raises(TrainingError, match="exited with 4 before answering"):
        wait_for_server("http://127.0.0.1:9/v1", proc, 5)
