"""Logging set-up with secret redaction: tokens and keys never reach a log line; no line is longer than LINE_CHARS."""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from core.files import private_file

REDACTED = "***"
# a query parameter's value (?access_token=..., &sig=...): uvicorn logs each WebSocket handshake's
# path with its query string, and a client may put its token there
QUERY_VALUE = re.compile(r"([?&][^\s=&?#\"'/]+=)[^\s&#\"']+")
LINE_CHARS = 4000  # a longer log line is cut, saying how much was left out
RING_RECORDS = 2000  # records the web page's logs view can show
RING_CHARS = 8000  # text kept of one record there
RECORD_CHARS = 64_000  # likewise one whole record (a traceback spans lines)


def _variants(secret: str) -> list[str]:
    """The secret itself; for a URL only its password (the host is no secret)."""
    try:
        parts = urlsplit(secret)
        if parts.scheme and parts.netloc:
            return [parts.password] if parts.password and len(parts.password) >= 4 else []
    except ValueError:
        pass
    return [secret] if len(secret) >= 4 else []


class Redactor:
    """Replaces every known secret (and query-string values) in a text."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = sorted({v for s in secrets for v in _variants(s)}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` with each secret replaced by ***."""
        text = QUERY_VALUE.sub(rf"\g<1>{REDACTED}", text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces every known secret and cuts what is too long."""

    def __init__(self, fmt: str, secrets: Iterable[str]):
        super().__init__(fmt)
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record's text with secrets replaced."""
        return capped(self.redact(super().format(record)))


class LogRing(logging.Handler):
    """The last RING_RECORDS log records of this process, formatted (and so redacted), for the web page."""

    def __init__(self, formatter: logging.Formatter, size: int = 0):
        super().__init__()
        self.setFormatter(formatter)
        self.records: deque[tuple[int, str]] = deque(maxlen=size or RING_RECORDS)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's text (cut to RING_CHARS)."""
        try:
            self.records.append((record.levelno, capped(self.format(record), whole=RING_CHARS)))
        except Exception:  # a record that cannot be formatted is not kept; logging goes on
            self.handleError(record)

    def recent(self, level: int = 0, limit: int = 500, contains: str = "") -> list[tuple[int, str]]:
        """The newest records at `level` or above (holding `contains`), newest first."""
        out: list[tuple[int, str]] = []
        for levelno, text in reversed(list(self.records)):
            if levelno >= level and contains in text:
                out.append((levelno, text))
                if len(out) >= limit:
                    break
        return out


def log_ring() -> LogRing | None:
    """The ring `setup_logging` put on the root logger (None when logging was set up otherwise)."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, LogRing)), None)


def capped(text: str, line: int = LINE_CHARS, whole: int = RECORD_CHARS) -> str:
    """`text` with each line, and the whole, cut to a bound (marker included)."""
    if len(text) <= line and "\n" not in text:
        return text
    text = "\n".join(_cut(part, line) for part in text.split("\n"))
    return _cut(text, whole)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = limit - len(f" …[{len(text)} characters cut]")  # the count said is never longer than this one
    return f"{text[:keep]} …[{len(text) - keep} characters cut]"


def setup_logging(level: str, secrets: Iterable[str], file: Path | None = None) -> None:
    """Log to stderr (stdout stays for replies), or to `file`, with redaction; quiet chatty libraries."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if file is not None:
        handler = logging.FileHandler(private_file(file), encoding="utf-8")
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler, LogRing(formatter)]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "openai", "urllib3", "chromadb", "jieba", "bm25s", "discord.gateway"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
