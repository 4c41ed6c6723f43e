"""[training]: dataset preparation and the xtuner QLoRA recipe."""

from __future__ import annotations

from pydantic import Field

from bot.config.core import Section


class TrainingConfig(Section):
    """[training]: defaults for `python -m training`."""

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
    piece_chars: int = Field(2600, ge=200)
    concurrency: int = Field(4, ge=1)
