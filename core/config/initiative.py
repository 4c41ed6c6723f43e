"""[initiative]: when the character speaks first, and when a short acknowledgement gets only an emoji."""

from __future__ import annotations

import re
import zoneinfo

from pydantic import Field, field_validator

from core.config.core import Section

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class InitiativeConfig(Section):
    """[initiative]: opt-in per channel with /initiative on (admins); hard caps always apply."""

    quiet_minutes: float = Field(180.0, ge=5.0)
    max_per_day: int = Field(2, ge=0, le=24)
    greetings: list[str] = Field(default_factory=list)
    timezone: str = ""
    check_seconds: float = Field(60.0, ge=1.0)
    react_chance: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("greetings")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not _HHMM.match(t)]
        if bad:
            raise ValueError(f"times are HH:MM on a 24-hour clock, not {', '.join(repr(t) for t in bad)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value
