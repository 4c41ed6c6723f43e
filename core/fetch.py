"""Downloading a file a platform points at (a picture, a voice message), never past a size limit."""

from __future__ import annotations

from typing import Literal

import httpx

Why = Literal["unreachable", "too_large"]


class FetchError(Exception):
    """A file that could not be had: `reason` says whether it was out of reach or too large."""

    def __init__(self, reason: Why, detail: str):
        super().__init__(detail)
        self.reason: Why = reason


def host_of(url: str) -> str:
    """The URL's host for messages (never its path or query, which may carry tokens)."""
    try:
        return httpx.URL(url).host or url[:60]
    except httpx.InvalidURL:
        return url[:60]


async def fetch_limited(client: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    """The file at `url`, read no further than `max_bytes`; FetchError when it can't be had."""
    try:
        async with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise FetchError("unreachable", f"HTTP {resp.status_code} from {host_of(url)}")
            length = resp.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise FetchError("too_large", f"{length} bytes (the limit is {max_bytes})")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("too_large", f"over {max_bytes} bytes")
            return bytes(body)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError("unreachable", f"{type(exc).__name__} fetching from {host_of(url)}") from exc
