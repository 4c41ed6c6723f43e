"""`tiny-model`: a small random chat model built on the spot, for smoke runs where no weights can be had.

A randomly initialised Llama (a few million parameters; an architecture transformers ships, so it
loads offline) and a SentencePiece BPE tokenizer trained on the given text, with the ChatML markers
as special tokens, `<|im_end|>` as its end-of-turn token and ChatML as its chat template: xtuner's
`qwen_chat` template trains the same layout the servers then apply. Llama with a SentencePiece model is
what llama.cpp's converter reads without its table of known tokenizers (a BPE tokenizer is told by
hashing its output on a fixed text, which a freshly trained one never matches). Head size 128 and
widths in multiples of 128 suit TurboMind and AWQ's group size.

Its words are noise: it exists to run the plumbing (train, merge, convert, quantize, serve, chat).
Needs torch, transformers, sentencepiece and protobuf (.venv-train).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from training.errors import TrainingError

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MARKERS = ["<|im_start|>", "<|im_end|>"]
TEMPLATE = "qwen_chat"  # xtuner's ChatML template: the layout CHATML renders


@dataclass(frozen=True)
class TinySpec:
    """The model's shape and the tokenizer's vocabulary."""

    vocab: int = 6000
    hidden: int = 256
    layers: int = 4
    heads: int = 2
    intermediate: int = 768
    context: int = 4096
    seed: int = 0

    def parameters(self, vocab: int | None = None) -> int:
        """Weights in the model: embeddings, LM head, attention, MLP and norms."""
        v, h = vocab or self.vocab, self.hidden
        return 2 * v * h + self.layers * (4 * h * h + 3 * h * self.intermediate + 2 * h) + h


def corpus_lines(sources: list[Path], chars: int) -> Iterator[str]:
    """Up to `chars` characters of each text file (folders: their *.txt), a line at a time."""
    files = [f for s in sources for f in (sorted(s.glob("*.txt")) if s.is_dir() else [s])]
    for path in files:
        if path.name.lower() == "readme.txt":
            continue
        taken = 0
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line
                    taken += len(line)
                if taken >= chars:
                    break


def build_tokenizer(folder: Path, lines: Iterator[str], vocab: int) -> None:
    """SentencePiece BPE with byte fallback, saved as a transformers Llama tokenizer with ChatML."""
    import sentencepiece as spm
    from transformers import LlamaTokenizerFast

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines, model_writer=model, vocab_size=vocab, model_type="bpe",
        character_coverage=0.9995, byte_fallback=True, user_defined_symbols=MARKERS,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
        split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=2, minloglevel=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    tok = LlamaTokenizerFast(
        vocab_file=str(folder / "tokenizer.model"), bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>",
        pad_token="</s>", add_bos_token=True, add_eos_token=False, legacy=False, add_prefix_space=False,
        additional_special_tokens=MARKERS,
    )
    tok.chat_template = CHATML
    tok.save_pretrained(str(folder))


def build_model(folder: Path, spec: TinySpec) -> int:
    """A randomly initialised LlamaForCausalLM sized to the tokenizer in `folder`; returns its size."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
        max_position_embeddings=spec.context, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder), safe_serialization=True)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id).save_pretrained(str(folder))
    return spec.parameters(len(tok))


def build(folder: Path, sources: list[Path], spec: TinySpec, chars: int = 150_000) -> dict[str, object]:
    """Tokenizer and model in `folder`; a summary for the terminal."""
    if not sources or not all(s.exists() for s in sources):
        raise TrainingError(f"corpus not found: {[str(s) for s in sources if not s.exists()] or 'none given'}")
    if spec.hidden % spec.heads:
        raise TrainingError(f"hidden size {spec.hidden} is not a multiple of {spec.heads} heads")
    build_tokenizer(folder, corpus_lines(sources, chars), spec.vocab)
    size = build_model(folder, spec)
    return {"out": str(folder), "parameters": size, "template": TEMPLATE,
            "config": json.loads((folder / "config.json").read_text(encoding="utf-8"))["architectures"]}
