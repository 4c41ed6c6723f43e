"""`config`: render an xtuner (Q)LoRA config from [training]: QLoRA for a GPU, plain LoRA without one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.config import TrainingConfig
from persona.card import Persona
from training.records import system_prompt

IDENTITY_PROMPTS = {"zh": ["你是谁？", "你是AI吗？"], "en": ["Who are you?", "Are you an AI?"]}


@dataclass(frozen=True)
class Recipe:
    """Everything the rendered config states."""

    base: str
    data: list[str]
    pretrain: list[str]
    system: str
    evaluation_inputs: list[str]
    cfg: TrainingConfig
    quantize: bool = True
    map_num_proc: int = 8
    notes: list[str] = field(default_factory=list)


def evaluation_inputs(persona: Persona, n: int = 4) -> list[str]:
    """Prompts the EvaluateChatHook answers during training: the card's example questions, then identity ones."""
    lang = "zh" if persona.card.language.startswith("zh") else "en"
    found = [persona.render(ex.user) for ex in persona.examples()]
    return list(dict.fromkeys(IDENTITY_PROMPTS[lang] + found))[:n]


def make_recipe(
    cfg: TrainingConfig, persona: Persona, data: list[Path], pretrain: list[Path], base: str | None = None,
    quantize: bool = True,
) -> Recipe:
    """The recipe for these data files, with absolute paths so the config runs from any folder."""
    return Recipe(
        base=base or cfg.base_model,
        data=[str(p.resolve()) for p in data],
        pretrain=[str(p.resolve()) for p in pretrain],
        system=system_prompt(persona),
        evaluation_inputs=evaluation_inputs(persona),
        cfg=cfg,
        quantize=quantize,
        notes=[f"persona: {persona.id} ({persona.name})"],
    )


HEADER = '''\
# xtuner {kind} config rendered by `python -m training config` from [training] in config.toml.
# {notes}
# Train:  xtuner train THIS_FILE --work-dir {work_dir}
# The prompt template must match the serving chat template (internlm2_chat and qwen_chat are the
# ChatML layout that lmdeploy and llama.cpp serve for InternLM2.5-chat and Qwen chat models).
import torch
from datasets import load_dataset
from mmengine.dataset import DefaultSampler
from mmengine.hooks import CheckpointHook, DistSamplerSeedHook, IterTimerHook, LoggerHook, ParamSchedulerHook
from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, LinearLR, OptimWrapper
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from xtuner.dataset import ConcatDataset, process_hf_dataset
from xtuner.dataset.collate_fns import default_collate_fn
from xtuner.dataset.map_fns import template_map_fn_factory
from xtuner.engine.hooks import DatasetInfoHook, EvaluateChatHook, VarlenAttnArgsToMessageHubHook
from xtuner.engine.runner import TrainLoop
from xtuner.model import SupervisedFinetune
from xtuner.utils import PROMPT_TEMPLATE

#######################################################################
#                          PART 1  Settings                           #
#######################################################################
pretrained_model_name_or_path = {base!r}
use_varlen_attn = False
# True: QLoRA, the base loaded in 4 bits (bitsandbytes; an NVIDIA GPU). False: LoRA on the full weights.
quantize = {quantize!r}
# fp16 mixed precision on a GPU; float32 without one (mmengine's AMP needs a GPU). __import__, not the
# `torch` above: mmengine reads this file with lazy imports, and a lazy module cannot be called here.
use_gpu = __import__("torch").cuda.is_available()

data_files = {data!r}
pretrain_files = {pretrain!r}
prompt_template = PROMPT_TEMPLATE.{template}
max_length = {max_length!r}
pack_to_max_length = {pack!r}
dataset_map_num_proc = min({map_num_proc!r}, __import__("os").cpu_count() or 1)

batch_size = {batch_size!r}  # per device
accumulative_counts = {accumulative_counts!r}
dataloader_num_workers = 0
max_epochs = {max_epochs!r}
optim_type = AdamW
lr = {lr!r}
betas = (0.9, 0.999)
weight_decay = 0
max_norm = 1  # grad clip
warmup_ratio = {warmup_ratio!r}

save_steps = {save_steps!r}
save_total_limit = 2

evaluation_freq = {evaluation_freq!r}
SYSTEM = {system!r}
evaluation_inputs = {evaluation_inputs!r}
'''

BODY = '''
#######################################################################
#                      PART 2  Model & Tokenizer                      #
#######################################################################
tokenizer = dict(
    type=AutoTokenizer.from_pretrained,
    pretrained_model_name_or_path=pretrained_model_name_or_path,
    trust_remote_code=True,
    padding_side="right",
)

model = dict(
    type=SupervisedFinetune,
    use_varlen_attn=use_varlen_attn,
    llm=dict(
        type=AutoModelForCausalLM.from_pretrained,
        pretrained_model_name_or_path=pretrained_model_name_or_path,
        trust_remote_code=True,
        torch_dtype=torch.float16 if use_gpu else torch.float32,
    ),
    lora=dict(type=LoraConfig, r={lora_r!r}, lora_alpha={lora_alpha!r}, lora_dropout={lora_dropout!r},
              bias="none", task_type="CAUSAL_LM"),
)
if quantize:
    model["llm"]["quantization_config"] = dict(
        type=BitsAndBytesConfig,
        load_in_4bit=True,
        load_in_8bit=False,
        llm_int8_threshold=6.0,
        llm_int8_has_fp16_weight=False,
        bnb_4bit_compute_dtype=torch.float16,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_type="nf4",
    )

#######################################################################
#                      PART 3  Dataset & Dataloader                   #
#######################################################################
# Conversations (QA, dialogues, self-cognition) go through the chat template.
sft_dataset = dict(
    type=process_hf_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=data_files),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=None,
    template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),
    remove_unused_columns=True,
    shuffle_before_pack=True,
    pack_to_max_length=pack_to_max_length,
    use_varlen_attn=use_varlen_attn,
    map_num_proc=dataset_map_num_proc,
)
# Plain novel text for incremental pretraining: no template, the output is the chunk itself.
pretrain_dataset = dict(
    type=process_hf_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=pretrain_files),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=None,
    template_map_fn=None,
    remove_unused_columns=True,
    shuffle_before_pack=True,
    pack_to_max_length=pack_to_max_length,
    use_varlen_attn=use_varlen_attn,
    map_num_proc=dataset_map_num_proc,
)
_parts = ([sft_dataset] if data_files else []) + ([pretrain_dataset] if pretrain_files else [])
train_dataset = _parts[0] if len(_parts) == 1 else dict(type=ConcatDataset, datasets=_parts)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=train_dataset,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=default_collate_fn, use_varlen_attn=use_varlen_attn),
)

#######################################################################
#                    PART 4  Scheduler & Optimizer                    #
#######################################################################
optim_wrapper = dict(
    type=AmpOptimWrapper if use_gpu else OptimWrapper,
    optimizer=dict(type=optim_type, lr=lr, betas=betas, weight_decay=weight_decay),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,
)
if use_gpu:
    optim_wrapper.update(loss_scale="dynamic", dtype="float16")

# warm-up (when warmup_ratio > 0), then cosine decay
param_scheduler = [
    dict(type=LinearLR, start_factor=1e-5, by_epoch=True, begin=0, end=warmup_ratio * max_epochs,
         convert_to_iter_based=True),
] if warmup_ratio > 0 else []
param_scheduler.append(
    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=True, begin=warmup_ratio * max_epochs, end=max_epochs,
         convert_to_iter_based=True),
)

train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)

#######################################################################
#                           PART 5  Runtime                           #
#######################################################################
custom_hooks = [
    dict(type=DatasetInfoHook, tokenizer=tokenizer),
    dict(type=EvaluateChatHook, tokenizer=tokenizer, every_n_iters=evaluation_freq,
         evaluation_inputs=evaluation_inputs, system=SYSTEM, prompt_template=prompt_template),
]
if use_varlen_attn:
    custom_hooks += [dict(type=VarlenAttnArgsToMessageHubHook)]

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=10),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=save_steps, max_keep_ckpts=save_total_limit),
    sampler_seed=dict(type=DistSamplerSeedHook),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
visualizer = None
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
log_processor = dict(by_epoch=False)
'''


def render(recipe: Recipe) -> str:
    """The config file's text (a Python module that mmengine's Config.fromfile loads)."""
    c = recipe.cfg
    head = HEADER.format(
        kind="QLoRA" if recipe.quantize else "LoRA", quantize=recipe.quantize, notes="; ".join(recipe.notes) or "-", work_dir=c.work_dir, base=recipe.base, data=recipe.data,
        pretrain=recipe.pretrain, template=c.prompt_template, max_length=c.max_length,
        pack=c.pack_to_max_length, map_num_proc=recipe.map_num_proc, batch_size=c.batch_size,
        accumulative_counts=c.accumulative_counts, max_epochs=c.max_epochs, lr=c.lr, warmup_ratio=c.warmup_ratio,
        save_steps=c.save_steps, evaluation_freq=c.evaluation_freq, system=recipe.system,
        evaluation_inputs=recipe.evaluation_inputs,
    )
    body = BODY.replace("{lora_r!r}", repr(c.lora_r)).replace("{lora_alpha!r}", repr(c.lora_alpha))
    return head + body.replace("{lora_dropout!r}", repr(c.lora_dropout))
