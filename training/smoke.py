"""`smoke`: the GPU road end to end in one run, timed, with the GPU memory each step used.

tiny model (or --base) → data from the novel → QLoRA config → train (bitsandbytes 4-bit) → merge
→ AWQ (lmdeploy lite auto_awq on a local calibration set) → TurboMind api_server with prefix caching
→ the bot chats with it. Each step is one of the toolkit's (or the bot's) own commands, run with the
environment that has its tools: .venv-train (xtuner), .venv-serve (lmdeploy) and .venv (the bot).
`--dry-run` runs the steps that need no GPU (tiny model, data, config, calibration set), checks the
environments, and prints the GPU steps' command lines without running them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from training.calibration import write_calibration
from training.errors import TrainingError
from training.tools import ROOT, has_gpu

LEAKS = re.compile(r"<\|im_(?:start|end)\|>|<\|endoftext\|>|</?s>|\b(?:system|assistant)\n")
CHAT_LINES = ["你是谁？", "师父被妖怪捉去了，怎么办？", "俺老孙来也！"]


@dataclass
class Step:
    """One command of the road: its interpreter, arguments, whether it needs the GPU."""

    name: str
    python: Path
    args: list[str]
    gpu: bool = False
    stdin: str | None = None
    background: bool = False

    def line(self) -> str:
        """The command line, shell-quoted."""
        return shlex.join([str(self.python), *self.args])


@dataclass
class Result:
    """What a step did: seconds, peak GPU memory (MiB, when a GPU was sampled), output tail."""

    name: str
    seconds: float = 0.0
    gpu_mib: int | None = None
    ran: bool = True
    output: str = ""


@dataclass
class Road:
    """Paths and choices of one smoke run."""

    work: Path
    novel: Path
    persona: str = "wukong"
    character: str = "孙悟空"
    base: Path | None = None
    template: str = ""
    port: int = 23339
    pythons: dict[str, Path] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        """The config.toml every step reads."""
        return self.work / "config.toml"


def default_pythons() -> dict[str, Path]:
    """The three environments, as make test and the docs build them."""
    return {"train": ROOT / ".venv-train/bin/python", "serve": ROOT / ".venv-serve/bin/python",
            "bot": ROOT / ".venv/bin/python"}


def write_config(road: Road) -> Path:
    """A config.toml for the run: small training, local calibration, the bot pointed at the server."""
    template = road.template or ("qwen_chat" if road.base is None else "internlm2_chat")
    text = f"""[bot]
data_dir = {json.dumps(str(road.work / "bot-data"))}
default_persona = {json.dumps(road.persona)}

[llm]
base_url = "http://127.0.0.1:{road.port}/v1"
server = "lmdeploy"
context_tokens = 4096
max_tokens = 128
temperature = 0.2
first_token_timeout = 60.0
request_timeout = 60.0
deadline = 120.0

[memory]
backend = "sqlite"
summary = false
facts = false

[personas]
dirs = [{json.dumps(str(ROOT / "persona"))}]

[knowledge]
enabled = false

[training]
base_model = {json.dumps(str(road.base or road.work / "base"))}
prompt_template = "{template}"
max_length = 1024
accumulative_counts = 1
lr = 0.001
max_epochs = 3
lora_r = 16
lora_alpha = 32
lora_dropout = 0.0
warmup_ratio = 0.0
save_steps = 100000
evaluation_freq = 100000
work_dir = {json.dumps(str(road.work / "work"))}
calib_samples = 16
calib_seqlen = 512
session_len = 4096
server_port = {road.port}
"""
    road.work.mkdir(parents=True, exist_ok=True)
    road.config.write_text(text, encoding="utf-8")
    return road.config


def steps(road: Road) -> list[Step]:
    """The road, in order."""
    py, w, cfg = road.pythons, road.work, ["--config", str(road.config)]
    out: list[Step] = []
    if road.base is None:
        out.append(Step("tiny model", py["train"], ["-m", "training", "tiny-model", *cfg, "--out", str(w / "base"),
                                                    "--corpus", str(road.novel)]))
    data = [str(w / "data" / "dialogues.jsonl"), str(w / "data" / "self.jsonl")]
    out += [
        Step("data: dialogues", py["train"], ["-m", "training", "prepare", "dialogues", *cfg, "--novel", str(road.novel),
                                              "--character", road.character, "--persona", road.persona, "--out",
                                              data[0], "--circumstances", "--group", "--short", "--limit", "60"]),
        Step("data: self-cognition", py["train"], ["-m", "training", "prepare", "self-cognition", *cfg, "--persona",
                                                   road.persona, "--out", data[1], "--n", "24"]),
        Step("config (QLoRA)", py["train"], ["-m", "training", "config", *cfg, "--quantize", "--out",
                                             str(w / "qlora.py"), "--data", *data]),
        Step("train (QLoRA, bitsandbytes)", py["train"], ["-m", "training", "train", *cfg, str(w / "qlora.py"),
                                                           "--seed", "0"], gpu=True),
        Step("merge", py["train"], ["-m", "training", "merge", *cfg, str(w / "qlora.py"), "--out", str(w / "merged")],
             gpu=True),
        Step("quantize (AWQ)", py["serve"], ["-m", "training", "quantize", *cfg, str(w / "merged"), "--out",
                                             str(w / "awq"), "--calib-file", str(road.novel)], gpu=True),
        Step("serve (TurboMind)", py["serve"], ["-m", "training", "serve", *cfg, str(w / "awq")], gpu=True,
             background=True),
        Step("chat (the bot)", py["bot"], ["-m", "bot", "chat", *cfg, "--persona", road.persona, "--session", "smoke"],
             gpu=True, stdin="\n".join(CHAT_LINES) + "\n"),
    ]
    return out


def check_environments(road: Road) -> list[str]:
    """Problems with the three environments: missing interpreters or modules the steps import."""
    needs = {"train": ["xtuner", "bitsandbytes", "sentencepiece"], "serve": ["lmdeploy", "datasets"], "bot": ["httpx"]}
    problems = []
    for env, modules in needs.items():
        python = road.pythons[env]
        if not python.exists():
            problems.append(f"{env}: no interpreter at {python}")
            continue
        probe = "import importlib.util as u, sys; sys.stdout.write(' '.join(m for m in sys.argv[1:] if not u.find_spec(m)))"
        done = subprocess.run([str(python), "-c", probe, *modules], capture_output=True, text=True, check=False)
        if done.stdout.strip():
            problems.append(f"{env} ({python}): missing {done.stdout.strip()}")
    return problems


class GpuSampler:
    """Peak memory used on the GPU (nvidia-smi, every half second) while a step runs."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        smi = shutil.which("nvidia-smi")
        while smi:  # at least one sample, however short the step
            done = subprocess.run([smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, check=False)
            values = [int(v) for v in done.stdout.split() if v.isdigit()]
            if values:
                self.peak = max(self.peak or 0, max(values))
            if self._stop.wait(0.5):
                break

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_for_server(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until /v1/models answers; a server that exits first is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TrainingError(f"the server exited with {proc.returncode} before answering")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TrainingError(f"no answer from {url} after {timeout:.0f} s")


def run(road: Road, *, dry_run: bool, say: Callable[[str], None] = print) -> list[Result]:
    """Run the road (or the CPU part of it, and print the rest); the first failing step stops it."""
    write_config(road)
    problems = check_environments(road)
    for problem in problems:
        say(f"environment: {problem}")
    if not dry_run and problems:
        raise TrainingError("fix the environments first (see above)")
    if not dry_run and not has_gpu():
        raise TrainingError("no NVIDIA GPU found (nvidia-smi lists none); --dry-run checks everything else")
    results: list[Result] = []
    server: subprocess.Popen[bytes] | None = None
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    try:
        for step in steps(road):
            if step.gpu and dry_run:
                say(f"[{step.name}] (needs the GPU: not run)\n  $ {step.line()}")
                results.append(Result(step.name, ran=False))
                continue
            say(f"[{step.name}]\n  $ {step.line()}")
            # the environment's own tools first (lmdeploy for quantize and serve)
            env["PATH"] = os.pathsep.join((str(step.python.parent), os.environ.get("PATH", "")))
            start = time.monotonic()
            with GpuSampler() as gpu:
                if step.background:
                    server = subprocess.Popen([str(step.python), *step.args], cwd=ROOT, env=env)
                    wait_for_server(f"http://127.0.0.1:{road.port}/v1", server, 600)
                    output = ""
                else:
                    done = subprocess.run([str(step.python), *step.args], input=step.stdin, capture_output=True,
                                          text=True, cwd=ROOT, env=env, check=False)
                    output = done.stdout  # the chat's replies; its log goes to a file
                    if done.returncode != 0:
                        say((done.stdout + done.stderr)[-3000:])
                        raise TrainingError(f"step '{step.name}' exited with {done.returncode}")
            results.append(Result(step.name, time.monotonic() - start, gpu.peak, output=output[-2000:]))
        if dry_run:  # quantize writes it itself; here it is only checked
            say(f"calibration set for AWQ: {write_calibration(road.novel, road.work / 'awq-calib')}")
        else:
            check_chat(results[-1].output, road.work / "bot-data" / "logs" / "chat.log")
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(30)
        report = [{"step": r.name, "seconds": round(r.seconds, 1), "gpu_mib": r.gpu_mib, "ran": r.ran} for r in results]
        (road.work / "smoke.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return results


def check_chat(output: str, log: Path) -> None:
    """The model (not the example-line fallback) answered every line; no template token reached the text."""
    replies = [line for line in output.splitlines() if line.strip()]
    by_model = log.read_text(encoding="utf-8").count("reply by model") if log.is_file() else 0
    if len(replies) < len(CHAT_LINES) or by_model < len(CHAT_LINES):
        raise TrainingError(f"{by_model} of {len(CHAT_LINES)} lines answered by the model (see {log}):\n"
                            f"{output[-1500:]}")
    leaked = [r for r in replies if LEAKS.search(r)]
    if leaked:
        raise TrainingError(f"template tokens in the replies: {leaked[:2]}")


def table(results: list[Result]) -> str:
    """The timings as a Markdown table (docs/training.md takes it as is)."""
    rows = ["| step | seconds | GPU memory (MiB) |", "|---|---|---|"]
    for r in results:
        seconds = f"{r.seconds:.1f}" if r.ran else "not run"
        rows.append(f"| {r.name} | {seconds} | {r.gpu_mib if r.gpu_mib is not None else '-'} |")
    return "\n".join(rows)
