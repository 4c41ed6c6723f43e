"""Reading an HTTP answer within bounds: server-sent-event lines of a bounded length, the head of a body.

The answers are aiohttp's: its parser is compiled, which matters on the hot path of a stream (one
event per token from a real server).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator

import aiohttp

_BREAK = re.compile(r"\r\n|\r|\n")


class LineTooLong(Exception):
    """A line went on past the bound (a server sending one endless event)."""


async def text_of(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body as text (UTF-8, as SSE is), piece by piece as it arrives; a character split between
    pieces comes whole with the later one."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    async for chunk in resp.content.iter_any():
        if text := decoder.decode(chunk):
            yield text
    if rest := decoder.decode(b"", final=True):
        yield rest


async def lines(pieces: AsyncIterator[str], longest: int) -> AsyncIterator[str]:
    """The text's lines (ended by CRLF, LF or CR, as SSE has them), none held past `longest` characters."""
    held: list[str] = []  # the start of a line whose end has not come yet
    size = 0
    async for piece in pieces:
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


async def head(resp: aiohttp.ClientResponse, limit: int) -> str:
    """At most `limit` bytes of an answer's body, as text (the rest is not read)."""
    data = bytearray()
    while len(data) < limit and (chunk := await resp.content.read(limit - len(data))):
        data += chunk
    return data.decode("utf-8", "replace")
