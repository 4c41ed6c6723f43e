"""The CPU road, run for real: tiny model → data → config → xtuner trains → merge → GGUF → llama.cpp → the bot.

No weights can be downloaded here, so the test builds a tiny random Llama and trains its tokenizer on
the shared corpora (`python -m training tiny-model`); every later step is the toolkit's own command,
run with .venv-train (this interpreter). The GGUF is served by llama.cpp's server from .venv-llm
($BOT_TEST_LLM_PYTHON) and the bot chats with it from its own .venv ($BOT_TEST_BOT_PYTHON): three
environments, as in production. The model's words are noise; what is checked is the plumbing, the
chat template and the stop token: replies end by themselves and no template token reaches the text.
Each step's time is printed at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mmengine.config import Config
from transformers import AutoTokenizer

from tests.real_model.llama import LlamaServer
from tests.support.shared_data import shared_dir
from training.records import load_lines
from training.tiny import CHATML

ROOT = Path(__file__).resolve().parents[2]
CORPORA = shared_dir() / "corpora"
NOVEL = CORPORA / "xiyouji.txt"
CAP = 120  # [llm] max_tokens in the bot's config: a reply that ends by itself stays under it
TEMPLATE_TOKENS = re.compile(r"<\|im_(?:start|end)\|>|<\|endoftext\|>|</?s>")
TIMES: dict[str, float] = {}


def _python(variable: str, default: Path, build: str) -> Path:
    path = Path(os.environ.get(variable) or default)
    path = path if path.is_absolute() else ROOT / path
    if not path.exists():
        pytest.fail(f"{variable}: no interpreter at {path}; {build}")
    return path


def run(step: str, *args: str, python: Path | None = None, stdin: str | None = None) -> str:
    """One command of the road (from the repository root), timed; its output, or a failure with its tail."""
    start = time.monotonic()
    done = subprocess.run([str(python or sys.executable), *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, timeout=900, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"})
    TIMES[step] = TIMES.get(step, 0.0) + time.monotonic() - start
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{step}: {' '.join(args[:4])} exited with {done.returncode}:\n{output[-4000:]}")
    return output


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the run and its config.toml: small LoRA training, the bot pointed at nothing yet."""
    if not NOVEL.is_file():
        pytest.fail(f"no shared corpora at {CORPORA} (set BOT_SHARED_DIR)")
    w = tmp_path_factory.mktemp("road")
    (w / "config.toml").write_text(f"""[bot]
data_dir = {json.dumps(str(w / "bot-data"))}
default_persona = "wukong"

[personas]
dirs = [{json.dumps(str(ROOT / "persona"))}]

[memory]
backend = "sqlite"

[knowledge]
enabled = false

[training]
base_model = {json.dumps(str(w / "tiny"))}
prompt_template = "qwen_chat"
max_length = 1024
accumulative_counts = 1
lr = 0.001
max_epochs = 4
lora_r = 16
lora_alpha = 32
lora_dropout = 0.0
warmup_ratio = 0.0
save_steps = 100000
evaluation_freq = 100000
work_dir = {json.dumps(str(w / "work"))}
""", encoding="utf-8")
    return w


def cli(w: Path, step: str, *args: str) -> str:
    """`python -m training --config W/config.toml ARGS`."""
    return run(step, "-m", "training", "--config", str(w / "config.toml"), *args)


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    out = cli(work, "1. tiny model + tokenizer", "tiny-model", "--out", str(work / "tiny"), "--corpus", str(CORPORA))
    assert json.loads(out.strip().splitlines()[-1])["parameters"] < 10_000_000
    return work / "tiny"


@pytest.fixture(scope="module")
def data(work: Path, tiny: Path) -> Path:
    out = work / "dialogues.jsonl"
    cli(work, "2. prepare dialogues", "prepare", "dialogues", "--novel", str(NOVEL), "--character", "孙悟空",
        "--persona", "wukong", "--out", str(out), "--limit", "5", "--circumstances", "--group", "--short")
    return out


@pytest.fixture(scope="module")
def lora_config(work: Path, data: Path) -> Path:
    out = work / "lora.py"
    printed = cli(work, "3. config", "config", "--no-quantize", "--out", str(out), "--data", str(data))
    assert "LoRA (full-precision base" in printed
    return out


@pytest.fixture(scope="module")
def trained(work: Path, lora_config: Path) -> Path:
    cli(work, "4. train (xtuner, CPU)", "train", str(lora_config), "--seed", "0")
    return work / "work"


@pytest.fixture(scope="module")
def merged(work: Path, trained: Path, lora_config: Path) -> Path:
    cli(work, "5. merge (pth_to_hf + merge)", "merge", str(lora_config), "--out", str(work / "merged"))
    return work / "merged"


@pytest.fixture(scope="module")
def gguf_file(work: Path, merged: Path) -> Path:
    cli(work, "6. export-gguf", "export-gguf", str(merged), "--out", str(work / "model.gguf"))
    return work / "model.gguf"


@pytest.fixture(scope="module")
def server(work: Path, gguf_file: Path) -> Iterator[LlamaServer]:
    python = _python("BOT_TEST_LLM_PYTHON", ROOT / ".venv-llm/bin/python", "run `bash .ci/llm.sh` (make test does)")
    start = time.monotonic()
    srv = LlamaServer(python, gguf_file, 4096, work / "llama.log").start()
    TIMES["7. llama.cpp server start"] = time.monotonic() - start
    yield srv
    srv.stop()


def test_the_data_from_the_novel_has_every_shape(work: Path, data: Path) -> None:
    out = cli(work, "2. validate", "validate", str(data))
    kinds = dict(re.findall(r"([a-z-]+) (\d+) \(\d+ %\)", out.split("kinds:", 1)[1].splitlines()[0]))
    assert int(kinds["circumstances"]) == len(load_lines(data)) > 5
    assert int(kinds["short"]) > 0 and int(kinds["multi-turn"]) > 0
    first = load_lines(data)[0]["conversation"][0]
    assert "【当前场景】" in first["system"] and "孙悟空" in first["system"]


def test_the_config_is_lora_without_4bit_on_cpu(lora_config: Path, tiny: Path) -> None:
    cfg = Config.fromfile(str(lora_config))
    assert cfg.quantize is False and cfg.use_gpu is False
    assert "quantization_config" not in cfg.model.llm
    assert cfg.optim_wrapper.type.__name__ == "OptimWrapper" and "loss_scale" not in cfg.optim_wrapper
    assert cfg.pretrained_model_name_or_path == str(tiny)
    assert cfg.prompt_template.SUFFIX == "<|im_end|>"  # qwen_chat: the ChatML layout the tokenizer's template has


def test_qlora_is_refused_without_a_gpu(work: Path, data: Path) -> None:
    cli(work, "3. config", "config", "--quantize", "--out", str(work / "qlora.py"), "--data", str(data))
    done = subprocess.run([sys.executable, "-m", "training", "--config", str(work / "config.toml"), "train",
                           str(work / "qlora.py")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "no NVIDIA GPU found" in done.stderr and "--no-quantize" in done.stderr


def test_xtuner_trains_on_cpu_and_the_loss_falls(trained: Path) -> None:
    scalars = sorted(trained.glob("*/vis_data/scalars.json"))
    assert scalars, "xtuner wrote no scalars"
    losses = [row["loss"] for row in load_lines(scalars[-1]) if "loss" in row]
    assert len(losses) >= 3
    assert losses[-1] < losses[0] - 0.5, losses  # the same few samples, epoch after epoch
    assert (trained / "last_checkpoint").is_file()


def test_merge_writes_a_full_model_with_the_chat_template(merged: Path) -> None:
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    assert (merged.with_name("merged-adapter") / "adapter_config.json").is_file()
    tok = AutoTokenizer.from_pretrained(str(merged))
    assert tok.chat_template == CHATML and tok.eos_token == "<|im_end|>"


def test_the_gguf_carries_the_template_and_the_stop_token(gguf_file: Path, merged: Path) -> None:
    sys.path.insert(0, str(Path(sys.prefix) / "llama.cpp" / "gguf-py"))
    from gguf import GGUFReader  # llama.cpp's own reader, from the converter's folder

    fields = GGUFReader(str(gguf_file)).fields

    def value(name: str) -> Any:
        f = fields[name]
        part = f.parts[f.data[0]]
        return bytes(part).decode("utf-8") if f.types[0].name == "STRING" else int(part[0])

    tok = AutoTokenizer.from_pretrained(str(merged))
    assert value("tokenizer.chat_template") == CHATML
    assert value("tokenizer.ggml.eos_token_id") == tok.convert_tokens_to_ids("<|im_end|>")
    assert value("general.architecture") == "llama"


def test_llama_cpp_serves_it_and_stops_by_itself(server: LlamaServer, data: Path) -> None:
    first = load_lines(data)[0]["conversation"][0]
    start = time.monotonic()
    body = {"messages": [{"role": "system", "content": first["system"]}, {"role": "user", "content": first["input"]}],
            "max_tokens": 64, "temperature": 0}
    reply = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120).json()
    TIMES["8. one chat completion"] = time.monotonic() - start
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop" and reply["usage"]["completion_tokens"] < 64
    assert not TEMPLATE_TOKENS.search(choice["message"]["content"])


def test_the_bot_chats_with_it(work: Path, server: LlamaServer) -> None:
    bot = _python("BOT_TEST_BOT_PYTHON", ROOT / ".venv/bin/python", "build the bot's .venv first (make test does)")
    with (work / "config.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[llm]\nbase_url = "{server.base_url}"\nmax_tokens = {CAP}\nfirst_token_timeout = 60.0\n')
    lines = ["你是谁？", "师父被妖怪捉去了，怎么办？", "猴哥，吃个桃子吧。"]
    mark = server.mark()
    out = run("9. the bot chats (3 messages)", "-m", "bot", "chat", "--config", str(work / "config.toml"),
              "--persona", "wukong", "--session", "road", python=bot, stdin="\n".join(lines) + "\n")
    replies = out.strip().splitlines()
    log = (work / "bot-data" / "logs" / "chat.log").read_text(encoding="utf-8")
    assert len(replies) == len(lines), out
    assert log.count("reply by model") >= 2, log  # the model answered, not the example-line fallback
    assert not any(TEMPLATE_TOKENS.search(r) for r in replies), replies
    generated = server.generated(mark)
    assert generated and all(n < CAP for n in generated), generated  # every reply ended by itself


def test_road_times(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\nCPU road, seconds per step:")
        for step, seconds in sorted(TIMES.items()):
            print(f"  {step:<32} {seconds:6.1f}")
        print(f"  {'total':<32} {sum(TIMES.values()):6.1f}")
