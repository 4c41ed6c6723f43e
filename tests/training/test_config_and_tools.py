"""`config` renders a loadable xtuner config; train/merge/quantize/serve check inputs, tools and the GPU."""

from __future__ import annotations

import ast
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import main

GOOD = {"conversation": [{"system": "s", "input": "你好", "output": "汝好。"}]}


def _data(tmp_path: Path) -> Path:
    f = tmp_path / "data.jsonl"
    f.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    return f


def _assigned(tree: ast.Module) -> dict[str, object]:
    """Top-level `name = <literal>` assignments of the rendered file."""
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def test_config_renders_the_training_section(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings(training={"lora_r": 32, "lora_alpha": 64, "lr": 1e-4, "max_epochs": 5,
                                       "accumulative_counts": 8, "max_length": 4096})
    data, pre = _data(tmp_path), tmp_path / "pre.jsonl"
    pre.write_text(json.dumps({"conversation": [{"input": "", "output": "原文"}]}) + "\n", encoding="utf-8")
    out = tmp_path / "cfg" / "qlora.py"
    assert main(["--config", str(settings.source), "config", "--out", str(out), "--data", str(data),
                 "--pretrain", str(pre), "--persona", "yexiu", "--base", "/models/internlm2_5-7b-chat"]) == 0
    text = out.read_text(encoding="utf-8")
    values = _assigned(ast.parse(text))
    assert values["pretrained_model_name_or_path"] == "/models/internlm2_5-7b-chat"
    assert values["data_files"] == [str(data.resolve())] and values["pretrain_files"] == [str(pre.resolve())]
    assert (values["max_length"], values["lr"], values["max_epochs"], values["accumulative_counts"]) == (4096, 1e-4, 5, 8)
    assert values["pack_to_max_length"] is True and values["batch_size"] == 1
    assert "叶修" in str(values["SYSTEM"]) and "{{char}}" not in str(values["SYSTEM"])
    assert values["evaluation_inputs"][0] == "你是谁？"
    assert "prompt_template = PROMPT_TEMPLATE.internlm2_chat" in text
    assert "r=32, lora_alpha=64" in text and 'bnb_4bit_quant_type="nf4"' in text and "load_in_4bit=True" in text
    assert "wrote" in capsys.readouterr().out
    # the real load happens in .venv-train (tests/training_xtuner); here: it compiles as Python
    subprocess.run([sys.executable, "-c", f"import ast; ast.parse(open({str(out)!r}).read())"], check=True)


def test_config_defaults_and_refusals(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    out = tmp_path / "c.py"
    assert main(["--config", str(settings.source), "config", "--out", str(out), "--data", str(_data(tmp_path))]) == 0
    values = _assigned(ast.parse(out.read_text(encoding="utf-8")))
    assert values["pretrained_model_name_or_path"] == "internlm/internlm2_5-1_8b-chat"
    assert values["pretrain_files"] == [] and "赫萝" in str(values["SYSTEM"])  # [bot] default_persona
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversation": []}\n', encoding="utf-8")
    assert main(["--config", str(settings.source), "config", "--out", str(tmp_path / "x.py"), "--data", str(bad)]) == 2
    assert f"{bad}:1:" in capsys.readouterr().err and not (tmp_path / "x.py").exists()
    assert main(["--config", str(settings.source), "config", "--out", str(tmp_path / "x.py")]) == 2


def _tool(folder: Path, name: str, body: str = "") -> Path:
    """A real executable on PATH that records its arguments."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{folder}/calls.log"\n{body}\n', encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def workspace(make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = make_settings(training={"work_dir": str(tmp_path / "work"), "session_len": 8192,
                                       "cache_max_entry_count": 0.4})
    cfg = tmp_path / "qlora.py"
    cfg.write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "iter_100.pth").write_text("", encoding="utf-8")
    (tmp_path / "work" / "iter_200.pth").write_text("", encoding="utf-8")
    os.utime(tmp_path / "work" / "iter_100.pth", (1, 1))
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text('{"architectures": ["InternLM2ForCausalLM"]}', encoding="utf-8")
    awq = tmp_path / "awq"
    awq.mkdir()
    (awq / "config.json").write_text('{"quantization_config": {"quant_method": "awq", "bits": 4}}', encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return {"config": str(settings.source), "xcfg": cfg, "merged": merged, "awq": awq, "bin": bin_dir, "tmp": tmp_path}


def test_print_shows_exact_command_lines(workspace, capsys) -> None:
    w, t = workspace, workspace["tmp"]
    assert main(["--config", w["config"], "train", str(w["xcfg"]), "--print"]) == 0
    assert main(["--config", w["config"], "merge", str(w["xcfg"]), "--out", str(t / "hf"), "--print"]) == 0
    assert main(["--config", w["config"], "quantize", str(w["merged"]), "--out", str(t / "q"), "--print"]) == 0
    assert main(["--config", w["config"], "serve", str(w["awq"]), "--print"]) == 0
    assert main(["--config", w["config"], "serve", str(w["merged"]), "--port", "8000", "--print"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [shlex.split(line) for line in lines] == [
        ["xtuner", "train", str(w["xcfg"]), "--work-dir", str(t / "work")],
        ["xtuner", "convert", "pth_to_hf", str(w["xcfg"]), str(t / "work" / "iter_200.pth"), str(t / "hf-adapter")],
        ["xtuner", "convert", "merge", "internlm/internlm2_5-1_8b-chat", str(t / "hf-adapter"), str(t / "hf"),
         "--max-shard-size", "2GB"],
        ["lmdeploy", "lite", "auto_awq", str(w["merged"]), "--calib-dataset", "ptb", "--calib-samples", "128",
         "--calib-seqlen", "2048", "--w-bits", "4", "--w-group-size", "128", "--work-dir", str(t / "q")],
        ["lmdeploy", "serve", "api_server", str(w["awq"]), "--backend", "turbomind", "--model-format", "awq",
         "--server-port", "23333", "--session-len", "8192", "--cache-max-entry-count", "0.4", "--tp", "1",
         "--enable-prefix-caching"],
        ["lmdeploy", "serve", "api_server", str(w["merged"]), "--backend", "turbomind", "--model-format", "hf",
         "--server-port", "8000", "--session-len", "8192", "--cache-max-entry-count", "0.4", "--tp", "1",
         "--enable-prefix-caching"],
    ]


def test_inputs_are_checked_first(workspace, capsys) -> None:
    w, t = workspace, workspace["tmp"]
    assert main(["--config", w["config"], "train", str(t / "missing.py"), "--print"]) == 2
    assert main(["--config", w["config"], "merge", str(w["xcfg"]), "--out", str(t / "hf"),
                 "--work-dir", str(t / "empty"), "--print"]) == 2
    assert main(["--config", w["config"], "quantize", str(t / "nomodel"), "--out", str(t / "q")]) == 2
    assert main(["--config", w["config"], "serve", str(t / "nomodel")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: xtuner config not found: {t / 'missing.py'}",
        f"error: no checkpoint (*.pth) in {t / 'empty'}; train first or pass --pth",
        f"error: merged model (config.json) not found: {t / 'nomodel' / 'config.json'}",
        f"error: model (config.json) not found: {t / 'nomodel' / 'config.json'}",
    ]


def test_missing_tool_and_missing_gpu(workspace, capsys) -> None:
    w = workspace
    assert main(["--config", w["config"], "train", str(w["xcfg"])]) == 2
    assert main(["--config", w["config"], "serve", str(w["awq"])]) == 2
    _tool(w["bin"], "xtuner")
    assert main(["--config", w["config"], "train", str(w["xcfg"])]) == 2
    _tool(w["bin"], "nvidia-smi", "echo 'No devices were found'; exit 6")
    assert main(["--config", w["config"], "train", str(w["xcfg"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: 'xtuner' is not on PATH: install it from requirements-train.txt " \
                     "(pip install -r requirements-train.txt)"
    assert err[1].startswith("error: 'lmdeploy' is not on PATH: install it from requirements-serve.txt")
    assert err[2] == err[3] == "error: no NVIDIA GPU found (nvidia-smi lists none); run this on a CUDA machine"
    assert "xtuner" not in (w["bin"] / "calls.log").read_text()  # only nvidia-smi was asked


def test_runs_the_tools_in_order_and_stops_on_failure(workspace, capsys) -> None:
    w, t = workspace, workspace["tmp"]
    _tool(w["bin"], "nvidia-smi", "echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'")
    _tool(w["bin"], "xtuner")
    assert main(["--config", w["config"], "merge", str(w["xcfg"]), "--out", str(t / "hf"),
                 "--pth", str(t / "work" / "iter_100.pth")]) == 0
    calls = (w["bin"] / "calls.log").read_text(encoding="utf-8").splitlines()
    assert calls[1:] == [
        f"xtuner convert pth_to_hf {w['xcfg']} {t / 'work' / 'iter_100.pth'} {t / 'hf-adapter'}",
        f"xtuner convert merge internlm/internlm2_5-1_8b-chat {t / 'hf-adapter'} {t / 'hf'} --max-shard-size 2GB",
    ]
    assert "$ xtuner convert pth_to_hf" in capsys.readouterr().err
    _tool(w["bin"], "xtuner", "exit 3")
    (w["bin"] / "calls.log").unlink()
    assert main(["--config", w["config"], "merge", str(w["xcfg"]), "--out", str(t / "hf")]) == 2
    assert "'xtuner convert pth_to_hf' exited with 3" in capsys.readouterr().err
    assert len([c for c in (w["bin"] / "calls.log").read_text().splitlines() if c.startswith("xtuner")]) == 1
