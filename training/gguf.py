"""`export-gguf`: the merged model as one GGUF file, written by llama.cpp's own converter.

The converter is llama.cpp's `convert_hf_to_gguf.py` with its `conversion/` package and `gguf-py/`
beside it: a llama.cpp checkout, or the same files from the llama-cpp-python source package, which
.ci/train.sh puts in `.venv-train/llama.cpp/` (the release .venv-llm's server is built from, so the
file it writes is one that server reads). It runs with this interpreter (torch, transformers,
sentencepiece and numpy: .venv-train has them).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from training.errors import TrainingError
from training.tools import ROOT, Plan, need_file

SCRIPT = "convert_hf_to_gguf.py"


def llama_cpp_release() -> str:
    """The llama-cpp-python version requirements-llm.txt pins (the server the GGUF is made for)."""
    req = ROOT / "requirements-llm.txt"
    found = re.search(r"^llama-cpp-python[^=\n]*==([\w.]+)", req.read_text(encoding="utf-8"), re.M) if req.is_file() else None
    return found.group(1) if found else "0.3.36"


def fetch_hint(dest: Path) -> str:
    """The shell lines that put the converter at `dest` (what .ci/train.sh does)."""
    v = llama_cpp_release()
    return (f"pip download --no-binary :all: --no-deps llama-cpp-python=={v} -d /tmp/lcp && "
            f"tar -xzf /tmp/lcp/llama_cpp_python-{v}.tar.gz -C /tmp/lcp && "
            f"mv /tmp/lcp/llama_cpp_python-{v}/vendor/llama.cpp {dest}")


def default_converter() -> Path:
    """Where .ci/train.sh puts the converter: `llama.cpp/` inside the running environment."""
    return Path(sys.prefix) / "llama.cpp" / SCRIPT


def find_converter(given: str) -> Path:
    """The converter script: `given` (the script or a llama.cpp folder), else the environment's copy."""
    path = Path(given) if given else default_converter()
    if path.is_dir():
        path = path / SCRIPT
    if not path.is_file():
        raise TrainingError(f"llama.cpp's converter not found at {path}: pass --converter "
                            f"(a llama.cpp checkout), or fetch it with: {fetch_hint(path.parent)}")
    if not (path.parent / "gguf-py").is_dir():
        raise TrainingError(f"{path.parent}: no gguf-py/ beside {SCRIPT} (copy the whole llama.cpp folder)")
    return path


def chat_template(model: Path) -> str:
    """The chat template the model's tokenizer_config.json carries ('' when none)."""
    config = model / "tokenizer_config.json"
    if not config.is_file():
        return ""
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("chat_template", "")
    except ValueError:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def export_plan(model: Path, out: Path, converter: Path, outtype: str = "f16") -> Plan:
    """`python convert_hf_to_gguf.py MODEL --outfile OUT --outtype T`; no GPU needed."""
    need_file(model / "config.json", "merged model (config.json)")
    if not chat_template(model):
        raise TrainingError(f"{model}/tokenizer_config.json has no chat_template: the GGUF would carry none and "
                            "a server could not lay out the chat as in training; add the base model's template")
    cmd = [sys.executable, str(converter), str(model), "--outfile", str(out), "--outtype", outtype]
    return Plan([cmd], needs_gpu=False, modules=("torch", "transformers", "sentencepiece"))
