"""Reading an HTTP answer within bounds: server-sent-event lines of a bounded length, the head of a body."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx

_BREAK = re.compile(r"\r\n|\r|\n")


class LineTooLong(Exception):
    """A line went on past the bound (a server sending one endless event)."""


async def lines(resp: httpx.Response, longest: int) -> AsyncIterator[str]:
    """The answer's lines (ended by CRLF, LF or CR, as SSE has them), none held past `longest` characters."""
    held: list[str] = []  # the start of a line whose end has not come yet
    size = 0
    async for piece in resp.aiter_text():
        parts = _BREAK.split(piece)
        if len(parts) > 1:
            parts[0] = "".join(held) + parts[0]
            held, size = [], 0
            for line in parts[:-1]:
                if len(line) > longest:
                    raise LineTooLong(f"a stream line longer than {longest} characters")
                yield line
        held.append(parts[-1])
        size += len(parts[-1])
        if size > longest:
            raise LineTooLong(f"a stream line longer than {longest} characters")
    if size:
        yield "".join(held)


async def head(resp: httpx.Response, limit: int) -> str:
    """At most `limit` bytes of an answer's body, as text (the rest is not read)."""
    data = bytearray()
    async for chunk in resp.aiter_bytes():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break
    return data.decode("utf-8", "replace")
