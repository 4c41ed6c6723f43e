"""Logging set-up with secret redaction: tokens and keys never reach a log line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

REDACTED = "***"
# a query parameter's value (?access_token=..., &sig=...): uvicorn logs each WebSocket handshake's
# path with its query string, and a client may put its token there
QUERY_VALUE = re.compile(r"([?&][^\s=&?#\"'/]+=)[^\s&#\"']+")


def _variants(secret: str) -> list[str]:
    """The secret itself; for a URL only its password (the host is no secret)."""
    try:
        parts = urlsplit(secret)
        if parts.scheme and parts.netloc:
            return [parts.password] if parts.password and len(parts.password) >= 4 else []
    except ValueError:
        pass
    return [secret] if len(secret) >= 4 else []


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces every known secret."""

    def __init__(self, fmt: str, secrets: Iterable[str]):
        super().__init__(fmt)
        self.secrets = sorted({v for s in secrets for v in _variants(s)}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        """The record's text with secrets replaced."""
        text = QUERY_VALUE.sub(rf"\g<1>{REDACTED}", super().format(record))
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def setup_logging(level: str, secrets: Iterable[str], file: Path | None = None) -> None:
    """Log to stderr (stdout stays for replies), or to `file`, with redaction; quiet chatty libraries."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "openai", "urllib3", "chromadb", "jieba", "bm25s", "discord.gateway"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
