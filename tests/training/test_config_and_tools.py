"""`config` renders a loadable (Q)LoRA config; train/merge/quantize/serve/export-gguf show exact command lines
and check their inputs first."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.helpers import tool
from training.cli import main
from training.tools import is_qlora

GOOD = {"conversation": [{"system": "s", "input": "你好", "output": "汝好。"}]}
XTUNER = [sys.executable, "-m", "training.xtuner_run"]


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


@pytest.fixture
def gpu_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """PATH holding only a folder of stand-in tools; `gpu_path(True)` adds an nvidia-smi that lists a GPU."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))

    def set_gpu(present: bool) -> Path:
        if present:
            tool(folder, "nvidia-smi", "echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'")
        return folder

    return set_gpu


def test_config_renders_the_training_section(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings(training={"lora_r": 32, "lora_alpha": 64, "lr": 1e-4, "max_epochs": 5,
                                       "accumulative_counts": 8, "max_length": 4096})
    data, pre = _data(tmp_path), tmp_path / "pre.jsonl"
    pre.write_text(json.dumps({"conversation": [{"input": "", "output": "原文"}]}) + "\n", encoding="utf-8")
    out = tmp_path / "cfg" / "qlora.py"
    assert main(["--config", str(settings.source), "config", "--out", str(out), "--data", str(data),
                 "--pretrain", str(pre), "--persona", "yexiu", "--base", "/models/internlm2_5-7b-chat", "--quantize"]) == 0
    text = out.read_text(encoding="utf-8")
    values = _assigned(ast.parse(text))
    assert values["pretrained_model_name_or_path"] == "/models/internlm2_5-7b-chat"
    assert values["data_files"] == [str(data.resolve())] and values["pretrain_files"] == [str(pre.resolve())]
    assert (values["max_length"], values["lr"], values["max_epochs"], values["accumulative_counts"]) == (4096, 1e-4, 5, 8)
    assert values["pack_to_max_length"] is True and values["batch_size"] == 1 and values["quantize"] is True
    assert "叶修" in str(values["SYSTEM"]) and "{{char}}" not in str(values["SYSTEM"])
    assert values["evaluation_inputs"][0] == "你是谁？"
    assert "prompt_template = PROMPT_TEMPLATE.internlm2_chat" in text
    assert "r=32, lora_alpha=64" in text and 'bnb_4bit_quant_type="nf4"' in text and "load_in_4bit=True" in text
    assert "QLoRA (4-bit base, NVIDIA GPU)" in capsys.readouterr().out
    assert is_qlora(out)
    # the real load happens in .venv-train (tests/training_xtuner); here: it compiles as Python
    subprocess.run([sys.executable, "-c", f"import ast; ast.parse(open({str(out)!r}).read())"], check=True)


def test_config_is_qlora_with_a_gpu_and_lora_without(make_settings, tmp_path: Path, gpu_path, capsys) -> None:
    settings = make_settings()
    data = _data(tmp_path)
    cfg = ["--config", str(settings.source), "config", "--data", str(data), "--out"]
    assert main([*cfg, str(tmp_path / "cpu.py")]) == 0
    assert "LoRA (full-precision base; GPU or CPU) - no GPU found; --quantize renders QLoRA" in capsys.readouterr().out
    gpu_path(True)
    assert main([*cfg, str(tmp_path / "gpu.py")]) == 0
    assert "QLoRA (4-bit base, NVIDIA GPU) - a GPU was found" in capsys.readouterr().out
    assert main([*cfg, str(tmp_path / "forced.py"), "--no-quantize"]) == 0
    assert [is_qlora(tmp_path / f) for f in ("cpu.py", "gpu.py", "forced.py")] == [False, True, False]
    # an older render (no `quantize = ...` line) is read by its 4-bit loading
    old = tmp_path / "old.py"
    old.write_text("model = dict(llm=dict(quantization_config=dict(load_in_4bit=True)))\n", encoding="utf-8")
    assert is_qlora(old)


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


@pytest.fixture
def workspace(make_settings, tmp_path: Path, gpu_path):
    settings = make_settings(training={"work_dir": str(tmp_path / "work"), "session_len": 8192,
                                       "cache_max_entry_count": 0.4})
    cfg = tmp_path / "qlora.py"
    cfg.write_text("quantize = True\n", encoding="utf-8")
    lora = tmp_path / "lora.py"
    lora.write_text("quantize = False\n", encoding="utf-8")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "iter_100.pth").write_text("", encoding="utf-8")
    (tmp_path / "work" / "iter_200.pth").write_text("", encoding="utf-8")
    os.utime(tmp_path / "work" / "iter_100.pth", (1, 1))
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text('{"architectures": ["InternLM2ForCausalLM"]}', encoding="utf-8")
    (merged / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}', encoding="utf-8")
    awq = tmp_path / "awq"
    awq.mkdir()
    (awq / "config.json").write_text('{"quantization_config": {"quant_method": "awq", "bits": 4}}', encoding="utf-8")
    converter = tmp_path / "llama.cpp" / "convert_hf_to_gguf.py"
    (converter.parent / "gguf-py").mkdir(parents=True)
    converter.write_text("", encoding="utf-8")
    return {"config": str(settings.source), "xcfg": cfg, "lora": lora, "merged": merged, "awq": awq,
            "bin": gpu_path(False), "tmp": tmp_path, "converter": converter}


def test_print_shows_exact_command_lines(workspace, capsys) -> None:
    w, t = workspace, workspace["tmp"]
    calib = t / "novel.txt"
    assert main(["--config", w["config"], "train", str(w["xcfg"]), "--print"]) == 0
    assert main(["--config", w["config"], "train", str(w["lora"]), "--seed", "7", "--print"]) == 0
    assert main(["--config", w["config"], "merge", str(w["xcfg"]), "--out", str(t / "hf"), "--print"]) == 0
    assert main(["--config", w["config"], "quantize", str(w["merged"]), "--out", str(t / "q"), "--print"]) == 0
    assert main(["--config", w["config"], "quantize", str(w["merged"]), "--out", str(t / "q"), "--calib-file",
                 str(calib), "--print"]) == 0
    assert main(["--config", w["config"], "serve", str(w["awq"]), "--print"]) == 0
    assert main(["--config", w["config"], "serve", str(w["merged"]), "--port", "8000", "--print"]) == 0
    assert main(["--config", w["config"], "export-gguf", str(w["merged"]), "--out", str(t / "m.gguf"), "--converter",
                 str(w["converter"].parent), "--outtype", "q8_0", "--print"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [shlex.split(line) for line in lines] == [
        [*XTUNER, "train", str(w["xcfg"]), "--work-dir", str(t / "work")],
        [*XTUNER, "train", str(w["lora"]), "--work-dir", str(t / "work"), "--seed", "7"],
        [*XTUNER, "pth_to_hf", str(w["xcfg"]), str(t / "work" / "iter_200.pth"), str(t / "hf-adapter")],
        [*XTUNER, "merge", "internlm/internlm2_5-1_8b-chat", str(t / "hf-adapter"), str(t / "hf"),
         "--max-shard-size", "2GB", "--safe-serialization"],
        ["lmdeploy", "lite", "auto_awq", str(w["merged"]), "--calib-dataset", "wikitext2", "--calib-samples", "128",
         "--calib-seqlen", "2048", "--w-bits", "4", "--w-group-size", "128", "--work-dir", str(t / "q")],
        ["cd", str(t / "q-calib"), "&&", "HF_DATASETS_OFFLINE=1", "HF_HUB_OFFLINE=1", "lmdeploy", "lite", "auto_awq",
         str(w["merged"]), "--calib-dataset", "pileval", "--calib-samples", "128", "--calib-seqlen", "2048",
         "--w-bits", "4", "--w-group-size", "128", "--work-dir", str(t / "q")],
        ["lmdeploy", "serve", "api_server", str(w["awq"]), "--backend", "turbomind", "--model-format", "awq",
         "--server-port", "23333", "--session-len", "8192", "--cache-max-entry-count", "0.4", "--tp", "1",
         "--enable-prefix-caching"],
        ["lmdeploy", "serve", "api_server", str(w["merged"]), "--backend", "turbomind", "--model-format", "hf",
         "--server-port", "8000", "--session-len", "8192", "--cache-max-entry-count", "0.4", "--tp", "1",
         "--enable-prefix-caching"],
        [sys.executable, str(w["converter"]), str(w["merged"]), "--outfile", str(t / "m.gguf"), "--outtype", "q8_0"],
    ]
    assert not (t / "q-calib").exists()  # --print writes nothing


def test_inputs_are_checked_first(workspace, capsys) -> None:
    w, t = workspace, workspace["tmp"]
    assert main(["--config", w["config"], "train", str(t / "missing.py"), "--print"]) == 2
    assert main(["--config", w["config"], "merge", str(w["xcfg"]), "--out", str(t / "hf"),
                 "--work-dir", str(t / "empty"), "--print"]) == 2
    assert main(["--config", w["config"], "quantize", str(t / "nomodel"), "--out", str(t / "q")]) == 2
    assert main(["--config", w["config"], "serve", str(t / "nomodel")]) == 2
    assert main(["--config", w["config"], "export-gguf", str(w["merged"]), "--out", str(t / "m.gguf"),
                 "--converter", str(t / "nowhere")]) == 2
    (w["merged"] / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    assert main(["--config", w["config"], "export-gguf", str(w["merged"]), "--out", str(t / "m.gguf"),
                 "--converter", str(w["converter"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[:4] == [
        f"error: xtuner config not found: {t / 'missing.py'}",
        f"error: no checkpoint (*.pth) in {t / 'empty'}; train first or pass --pth",
        f"error: merged model (config.json) not found: {t / 'nomodel' / 'config.json'}",
        f"error: model (config.json) not found: {t / 'nomodel' / 'config.json'}",
    ]
    assert err[4].startswith(f"error: llama.cpp's converter not found at {t / 'nowhere'}: pass --converter")
    assert "pip download --no-binary :all: --no-deps llama-cpp-python==" in err[4]
    assert err[5].startswith(f"error: {w['merged']}/tokenizer_config.json has no chat_template")


def test_missing_xtuner_lmdeploy_and_gpu(workspace, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    w = workspace
    assert main(["--config", w["config"], "train", str(w["xcfg"])]) == 2
    assert main(["--config", w["config"], "serve", str(w["awq"])]) == 2
    fake = w["tmp"] / "fake"
    (fake / "xtuner").mkdir(parents=True)
    (fake / "xtuner" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(fake))
    tool(w["bin"], "nvidia-smi", "echo 'No devices were found'; exit 6")
    assert main(["--config", w["config"], "train", str(w["xcfg"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (f"error: 'xtuner' is not installed in {sys.executable}: run the toolkit with the environment "
                      "built from requirements-train.txt (.venv-train/bin/python -m training ...)")
    assert err[1].startswith("error: 'lmdeploy' is not on PATH: install it from requirements-serve.txt")
    assert err[2] == ("error: no NVIDIA GPU found (nvidia-smi lists none); run this on a CUDA machine, or render the "
                      "config with --no-quantize to train LoRA without one")
    assert "xtuner" not in (w["bin"] / "calls.log").read_text()  # only nvidia-smi was asked
