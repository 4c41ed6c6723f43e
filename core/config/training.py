"""[training]: dataset preparation, the xtuner (Q)LoRA recipe, AWQ quantization, serving, GGUF export."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from core.config.core import Section


class TrainingConfig(Section):
    """[training]: defaults for `python -m training`."""

    # the recipe (rendered by `python -m training config`)
    base_model: str = "internlm/internlm2_5-1_8b-chat"
    prompt_template: str = "internlm2_chat"
    max_length: int = Field(2048, ge=128)
    pack_to_max_length: bool = True
    batch_size: int = Field(1, ge=1)
    accumulative_counts: int = Field(16, ge=1)
    lr: float = Field(2e-4, gt=0.0)
    max_epochs: int = Field(3, ge=1)
    lora_r: int = Field(64, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    save_steps: int = Field(500, ge=1)
    evaluation_freq: int = Field(500, ge=1)
    work_dir: Path = Path("work_dirs/roleplay")
    # dataset preparation
    persona: str = ""
    piece_chars: int = Field(2600, ge=200)
    questions_per_piece: int = Field(3, ge=1, le=20)
    concurrency: int = Field(4, ge=1)
    retries: int = Field(3, ge=0)
    retry_backoff: float = Field(1.0, ge=0.0)
    request_timeout: float = Field(120.0, gt=0.0)
    pretrain_chars: int = Field(1024, ge=64)
    pretrain_overlap: int = Field(50, ge=0)
    # quantization (lmdeploy lite auto_awq)
    calib_dataset: Literal[
        "wikitext2", "c4", "pileval", "gsm8k", "neuralmagic_calibration", "open-platypus", "openwebtext"
    ] = "wikitext2"
    calib_file: str = ""
    calib_samples: int = Field(128, ge=1)
    calib_seqlen: int = Field(2048, ge=64)
    w_bits: Literal[4, 8] = 4
    w_group_size: int = Field(128, ge=1)
    # serving (lmdeploy serve api_server, TurboMind)
    server_port: int = Field(23333, ge=1, le=65535)
    session_len: int = Field(32768, ge=512)
    cache_max_entry_count: float = Field(0.2, gt=0.0, le=1.0)
    tp: int = Field(1, ge=1)
    # GGUF export (llama.cpp's convert_hf_to_gguf.py)
    gguf_converter: str = ""
    gguf_outtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
