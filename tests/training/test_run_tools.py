"""The toolkit runs the real programs: stand-in xtuner scripts, lmdeploy and llama.cpp's converter record what
they were given; the first failure stops the rest with its exit code."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from tests.training.helpers import tool
from training.calibration import calibration_texts
from training.cli import main

SCRIPT = """import json, os, sys
with open(os.environ["XTUNER_LOG"], "a") as f:
    f.write(json.dumps([__name__, __file__.rsplit("/xtuner/", 1)[1], sys.argv[1:]]) + "\\n")
sys.exit(int(os.environ.get("XTUNER_EXIT", "0")))
"""


TORCH = """import types
cuda = types.SimpleNamespace(is_available=lambda: False)
cpu = types.SimpleNamespace()
"""


@pytest.fixture(autouse=True)
def stand_in_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot's environment has no torch: a stand-in answers the toolkit's checks (the real one is
    exercised with .venv-train in tests/training_xtuner)."""
    if importlib.util.find_spec("torch") is not None:
        return
    root = tmp_path / "stand-in-torch"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / "__init__.py").write_text(TORCH, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    paths = [str(root), *filter(None, [os.environ.get("PYTHONPATH", "")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


@pytest.fixture
def fake_xtuner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package named xtuner whose train/pth_to_hf/merge scripts log their arguments (in and out of process)."""
    root = tmp_path / "fake"
    for rel in ("tools/train.py", "tools/model_converters/pth_to_hf.py", "tools/model_converters/merge.py"):
        (root / "xtuner" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "xtuner" / rel).write_text(SCRIPT, encoding="utf-8")
    (root / "xtuner" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")])))
    monkeypatch.setenv("XTUNER_LOG", str(tmp_path / "xtuner.log"))
    return tmp_path / "xtuner.log"


@pytest.fixture
def road(make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = make_settings(training={"work_dir": str(tmp_path / "work"), "calib_samples": 4, "calib_seqlen": 64})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    lora = tmp_path / "lora.py"
    lora.write_text("quantize = False\n", encoding="utf-8")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "iter_10.pth").write_text("", encoding="utf-8")
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}", encoding="utf-8")
    (merged / "tokenizer_config.json").write_text('{"chat_template": "chatml"}', encoding="utf-8")
    return {"config": str(settings.source), "lora": lora, "merged": merged, "bin": bin_dir, "tmp": tmp_path}


def test_lora_trains_and_merges_without_a_gpu(road, fake_xtuner: Path, capsys) -> None:
    t = road["tmp"]
    assert main(["--config", road["config"], "train", str(road["lora"]), "--seed", "0"]) == 0
    assert main(["--config", road["config"], "merge", str(road["lora"]), "--out", str(t / "hf")]) == 0
    calls = [json.loads(line) for line in fake_xtuner.read_text(encoding="utf-8").splitlines()]
    assert calls == [
        ["__main__", "tools/train.py", [str(road["lora"]), "--work-dir", str(t / "work"), "--seed", "0"]],
        ["__main__", "tools/model_converters/pth_to_hf.py", [str(road["lora"]), str(t / "work" / "iter_10.pth"),
                                                             str(t / "hf-adapter")]],
        ["__main__", "tools/model_converters/merge.py", ["internlm/internlm2_5-1_8b-chat", str(t / "hf-adapter"),
                                                         str(t / "hf"), "--max-shard-size", "2GB",
                                                         "--safe-serialization"]],
    ]
    assert "$ " + sys.executable + " -m training.xtuner_run train" in capsys.readouterr().err


def test_the_first_failure_stops_the_rest_with_its_exit_code(road, fake_xtuner: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("XTUNER_EXIT", "3")
    assert main(["--config", road["config"], "merge", str(road["lora"]), "--out", str(road["tmp"] / "hf")]) == 2
    assert "error: 'xtuner pth_to_hf' exited with 3" in capsys.readouterr().err
    assert len(fake_xtuner.read_text(encoding="utf-8").splitlines()) == 1


def test_quantize_calibrates_on_a_local_set(road, capsys) -> None:
    t = road["tmp"]
    novel = t / "novel.txt"
    novel.write_text("\n".join(f"第{i}段：石猴在山中行走，遇见一条溪水。" * 3 for i in range(40)), encoding="utf-8")
    # lmdeploy reads `mit-han-lab/pile-val-backup` from the folder it runs in, offline
    tool(road["bin"], "nvidia-smi", "echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'")
    tool(road["bin"], "lmdeploy", 'echo "cwd $PWD offline $HF_DATASETS_OFFLINE" >> "$(dirname "$0")/calls.log"\n'
                                  'test -s mit-han-lab/pile-val-backup/validation.jsonl')
    assert main(["--config", road["config"], "quantize", str(road["merged"]), "--out", str(t / "awq"),
                 "--calib-file", str(novel)]) == 0
    calls = (road["bin"] / "calls.log").read_text(encoding="utf-8").splitlines()
    calls = [c for c in calls if not c.startswith("nvidia-smi")]
    assert calls[0].startswith(f"lmdeploy lite auto_awq {road['merged']} --calib-dataset pileval --calib-samples 4")
    assert calls[1] == f"cwd {t / 'awq-calib'} offline 1"
    rows = [json.loads(line) for line in (t / "awq-calib/mit-han-lab/pile-val-backup/validation.jsonl").open()]
    assert len(rows) >= 8 and all(0 < len(r["text"]) <= 300 for r in rows)
    assert "calibration set:" in capsys.readouterr().out


def test_calibration_texts_from_conversations(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "你好"},
                                             {"role": "assistant", "content": "俺老孙来也" * 80}]},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    texts = calibration_texts(data)
    assert [len(t) for t in texts] == [300, 103] and texts[0].startswith("你好\n俺老孙")


def test_export_runs_llama_cpps_converter(road, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    t = road["tmp"]
    for module in ("transformers", "sentencepiece"):  # what the converter imports (.venv-train has them)
        (t / "mods" / module).mkdir(parents=True, exist_ok=True)
        (t / "mods" / module / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(t / "mods"))
    converter = t / "llama.cpp" / "convert_hf_to_gguf.py"
    (converter.parent / "gguf-py").mkdir(parents=True)
    converter.write_text("import sys, pathlib\nargs = sys.argv[1:]\n"
                         "pathlib.Path(args[args.index('--outfile') + 1]).write_text(' '.join(args))\n", encoding="utf-8")
    out = t / "gguf" / "model.gguf"
    assert main(["--config", road["config"], "export-gguf", str(road["merged"]), "--out", str(out), "--converter",
                 str(converter)]) == 0
    assert out.read_text() == f"{road['merged']} --outfile {out} --outtype f16"
    converter.write_text("raise SystemExit(5)\n", encoding="utf-8")
    assert main(["--config", road["config"], "export-gguf", str(road["merged"]), "--out", str(out), "--converter",
                 str(converter)]) == 2
    assert "error: 'convert_hf_to_gguf.py' exited with 5" in capsys.readouterr().err
