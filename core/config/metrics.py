"""[metrics]: the Prometheus exporter (off by default)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from core.config.core import Section


class MetricsConfig(Section):
    """[metrics]: serve Prometheus metrics over HTTP at /metrics."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=1, le=65535)
    token: SecretStr = SecretStr("")  # BOT_METRICS__TOKEN; scrapers send it as a Bearer token
