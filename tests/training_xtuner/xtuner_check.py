"""xtuner's own code loads the rendered config and tokenizes the produced JSONL (run by .ci/train.sh).

No InternLM tokenizer can be downloaded here, so the test trains a small byte-level BPE tokenizer on the
produced data with the `tokenizers` library and saves it as a transformers PreTrainedTokenizerFast
folder; the config's `pretrained_model_name_or_path` points at that folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mmengine.config import Config
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerFast
from xtuner.registry import BUILDER
from xtuner.utils import PROMPT_TEMPLATE

from core.config import TrainingConfig
from persona.library import PersonaLibrary
from training import dialogues, recipe, selfcog, text, validate
from training.records import JsonlWriter, conversation, system_prompt

ROOT = Path(__file__).resolve().parents[2]
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
SCENES = """唐僧：「悟空，前面山高林密，可有妖怪？」
孙悟空：「师父放心，俺老孙先去探探路。」
猪八戒：「猴哥，顺便化些斋饭回来。」
孙悟空：「呆子，就知道吃！」

沙僧：「大师兄，师父被妖精捉去了！」
孙悟空：「休慌，俺老孙这就打上门去。」
"""

REPO = Path(__file__).resolve().parents[2]


def _novel_text() -> str:
    """Made-up prose in three chapters (no copied novel text)."""
    body = []
    for c, numeral in enumerate("一二三", 1):
        body.append(f"第{numeral}回 测试章节")
        body += [f"［{c}-{p}］石猴翻过山岭，见一道瀑布从崖上挂下，水声如雷，众猴齐声叫好。" for p in range(12)]
    return "\n".join(body)


def _produce(tmp: Path) -> tuple[list[Path], list[Path], str]:
    persona = PersonaLibrary([ROOT / "persona"]).get("wukong")
    system = system_prompt(persona)
    sc, dl, pt = tmp / "self.jsonl", tmp / "dialogues.jsonl", tmp / "pretrain.jsonl"
    with JsonlWriter(sc, append=False) as w:
        w.write_all(selfcog.self_cognition_records(persona, selfcog.templated_pairs(persona, 12)))
    scenes = dialogues.parse_scenes(SCENES)
    with JsonlWriter(dl, append=False) as w:
        w.write_all(dialogues.dialogue_records(scenes, {"孙悟空"}, system, dialogues.Shapes(max_turns=8)))
    with JsonlWriter(pt, append=False) as w:
        w.write_all(conversation("", [("", chunk)]) for chunk in text.chunks(_novel_text(), 300, 50))
    return [sc, dl], [pt], system


def _tokenizer(folder: Path, files: list[Path]) -> Path:
    """A byte-level BPE tokenizer trained on the produced records, saved as a transformers folder."""
    corpus: list[str] = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            for turn in json.loads(line)["conversation"]:
                corpus += [turn.get("system", ""), turn.get("input", ""), turn["output"]]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=3000, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([c for c in corpus if c] * 2, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("xtuner")
    data, pretrain, system = _produce(tmp)
    tok = _tokenizer(tmp / "tokenizer", data + pretrain)
    persona = PersonaLibrary([ROOT / "persona"]).get("wukong")
    made = recipe.make_recipe(TrainingConfig(max_length=512), persona, data, pretrain, base=str(tok))
    path = tmp / "qlora_wukong.py"
    path.write_text(recipe.render(made), encoding="utf-8")
    return {"path": path, "data": data, "pretrain": pretrain, "system": system, "tok": tok}


def _build(dataset_cfg: Any) -> Any:
    """Build a dataset from the config with one map process (2 cores here; the config says 8)."""
    parts = dataset_cfg.get("datasets", [dataset_cfg])
    for part in parts:
        part["map_num_proc"] = 1
    return BUILDER.build(dataset_cfg)


def test_produced_files_pass_validation(rendered: dict[str, Any]) -> None:
    report = validate.validate(rendered["data"] + rendered["pretrain"])
    assert report.ok and report.records > 10 and not report.warnings


def test_config_loads_with_mmengine(rendered: dict[str, Any]) -> None:
    cfg = Config.fromfile(str(rendered["path"]))
    assert cfg.prompt_template == PROMPT_TEMPLATE.internlm2_chat
    assert cfg.pretrained_model_name_or_path == str(rendered["tok"])
    llm = cfg.model.llm
    assert llm.quantization_config.type is BitsAndBytesConfig
    assert llm.quantization_config.bnb_4bit_quant_type == "nf4" and llm.quantization_config.load_in_4bit
    assert (cfg.model.lora.r, cfg.model.lora.lora_alpha) == (64, 16)
    assert (cfg.max_length, cfg.pack_to_max_length, cfg.batch_size, cfg.accumulative_counts) == (512, True, 1, 16)
    assert rendered["system"] == cfg.SYSTEM and "你是谁？" in cfg.evaluation_inputs
    hook = next(h for h in cfg.custom_hooks if h["type"].__name__ == "EvaluateChatHook")
    assert hook["prompt_template"] == PROMPT_TEMPLATE.internlm2_chat and hook["system"] == rendered["system"]
    assert [p["template_map_fn"] is None for p in cfg.train_dataloader.dataset.datasets] == [False, True]


def test_xtuner_tokenizes_the_jsonl_with_the_chat_template(rendered: dict[str, Any]) -> None:
    cfg = Config.fromfile(str(rendered["path"]))
    sft = cfg.sft_dataset
    sft["pack_to_max_length"] = False  # one sample per record, to check the label mask turn by turn
    dataset = _build(sft)
    tok = AutoTokenizer.from_pretrained(str(rendered["tok"]))
    records = [json.loads(line) for f in rendered["data"] for line in f.read_text(encoding="utf-8").splitlines()]
    assert len(dataset) == len(records)
    sample = dataset[0]
    shown = tok.decode(sample["input_ids"])
    first = records[0]["conversation"][0]
    assert shown.startswith("<s><|im_start|>system\n" + rendered["system"] + "<|im_end|>\n<|im_start|>user\n")
    assert f"{first['input']}<|im_end|>\n<|im_start|>assistant\n{first['output']}<|im_end|>" in shown
    learned = [t for t, label in zip(sample["input_ids"], sample["labels"], strict=True) if label != -100]
    assert tok.decode(learned).strip() == first["output"] + "<|im_end|>"
    # multi-turn dialogue: every output is learned, no system prompt text is
    multi = next(i for i, r in enumerate(records) if len(r["conversation"]) > 1)
    sample = dataset[multi]
    learned_text = tok.decode([t for t, lab in zip(sample["input_ids"], sample["labels"], strict=True) if lab != -100])
    for turn in records[multi]["conversation"]:
        assert turn["output"] in learned_text and turn["input"] not in learned_text
    assert rendered["system"] not in learned_text


def test_whole_rendered_dataset_packs(rendered: dict[str, Any]) -> None:
    cfg = Config.fromfile(str(rendered["path"]))
    dataset = _build(cfg.train_dataloader.dataset)
    tok = AutoTokenizer.from_pretrained(str(rendered["tok"]))
    lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    assert len(dataset) >= 2 and max(lengths) <= 512
    text_all = "".join(tok.decode(dataset[i]["input_ids"]) for i in range(len(dataset)))
    assert "<|im_start|>assistant\n" in text_all
    assert "石猴翻过山岭" in text_all  # the pretraining chunks are in, without a template


def test_xtuner_run_answers_xtuners_cpu_question() -> None:
    probe = ("import torch, training.xtuner_run as x; added = x.cpu_bf16_answer(); "
             "print(added, torch.cpu.is_bf16_supported(), x.cpu_bf16_answer())")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", "False"]  # added once, answers False, never twice
    bad = subprocess.run([sys.executable, "-m", "training.xtuner_run", "chat"], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert bad.returncode == 1 and "usage: python -m training.xtuner_run {train|pth_to_hf|merge}" in bad.stderr
