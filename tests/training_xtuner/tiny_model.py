"""A tiny chat model built on the spot: no weights can be downloaded here, so the CPU road trains one.

A randomly initialised Llama (a few million parameters, an architecture transformers ships natively)
and a SentencePiece BPE tokenizer trained on the shared corpora, with the ChatML markers as special
tokens and ChatML as the chat template (xtuner's `qwen_chat` template is the same layout). Llama with
a SentencePiece model is what llama.cpp's converter reads without a table of known tokenizers (a
BPE tokenizer is identified by hashing its output on a fixed text, which a fresh tokenizer never
matches).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MARKERS = ["<|im_start|>", "<|im_end|>"]
TEMPLATE = "qwen_chat"  # xtuner's ChatML template, the layout CHATML renders


def corpus_lines(corpora: Path, chars: int, extra: list[str]) -> Iterator[str]:
    """The first `chars` characters of each shared novel, a line at a time, then `extra` texts."""
    for novel in sorted(corpora.glob("*.txt")):
        if novel.name == "README.txt":
            continue
        taken = 0
        with novel.open(encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line
                    taken += len(line)
                if taken >= chars:
                    break
    for text in extra:
        yield from (line for line in text.splitlines() if line.strip())


def build_tokenizer(folder: Path, lines: Iterator[str], vocab: int = 6000) -> Path:
    """SentencePiece BPE with byte fallback, saved as a transformers Llama tokenizer folder."""
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
    return folder


def build_model(folder: Path, *, hidden: int = 256, layers: int = 4, heads: int = 4, context: int = 4096,
                seed: int = 0) -> Path:
    """A randomly initialised LlamaForCausalLM sized to the tokenizer in `folder`, saved beside it."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3 // 8 * 8,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=context, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id).save_pretrained(str(folder))
    return folder


def parameters(folder: Path) -> int:
    """Parameter count of the saved model (from config.json, without loading it)."""
    c = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    h, v, n, i = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"], c["intermediate_size"]
    return 2 * v * h + n * (4 * h * h + 3 * h * i + 2 * h) + h
