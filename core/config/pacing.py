"""[pacing]: replies sent as a few chat-sized messages, each after a typing delay."""

from __future__ import annotations

from pydantic import Field, model_validator

from core.config.core import Section


class PacingConfig(Section):
    """[pacing]: how a reply is cut at sentence ends and how long each part "types"."""

    enabled: bool = True
    max_messages: int = Field(3, ge=1, le=10)
    chars_per_second: float = Field(15.0, gt=0.0)
    min_delay_seconds: float = Field(0.5, ge=0.0, le=60.0)
    max_delay_seconds: float = Field(4.0, ge=0.0, le=60.0)
    split_over_chars: int = Field(30, ge=0)

    @model_validator(mode="after")
    def _delays_in_order(self) -> PacingConfig:
        """min_delay_seconds ≤ max_delay_seconds."""
        if self.min_delay_seconds > self.max_delay_seconds:
            raise ValueError(
                f"min_delay_seconds ({self.min_delay_seconds}) must not exceed max_delay_seconds ({self.max_delay_seconds})"
            )
        return self
