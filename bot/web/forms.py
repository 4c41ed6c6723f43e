"""What a browser's form sends: url-encoded fields, or a multipart upload (bodies are read capped, by chat.read_capped)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_FIELDS = 64
_BOUNDARY = re.compile(r'boundary="?([^";]{1,200})"?')
_NAME = re.compile(rb'\bname="([^"]{0,100})"')


def fields(body: bytes) -> dict[str, str]:
    """An url-encoded form: each field's last value."""
    try:
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:  # more fields than any form of the page has
        return {}
    return {k: v[-1] for k, v in parsed.items()}


@dataclass(frozen=True, slots=True)
class Part:
    """One field of a multipart form: its name and its bytes (a file's name is never kept)."""

    name: str
    data: bytes


def multipart(body: bytes, content_type: str) -> list[Part] | None:
    """The parts of a multipart/form-data body, or None when it is not one."""
    found = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/form-data") or found is None:
        return None
    delimiter = b"--" + found.group(1).encode("latin-1")
    parts: list[Part] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--") or len(parts) >= MAX_FIELDS:
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = _NAME.search(head)
        if not sep or name is None:
            return None
        parts.append(Part(name.group(1).decode("utf-8", "replace"), data.removesuffix(b"\r\n")))
    return parts
