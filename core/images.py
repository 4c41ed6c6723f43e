"""Pictures for a model that can see: what an image is, and the checks before it is sent.

An `Image` is an http(s) URL or a file's bytes. `ImageGate.prepare` applies the [llm] limits
(`max_images`, `max_image_bytes`, png/jpeg/webp/gif told by magic bytes, never by a file name) and
the fetch policy ([fetch]), and returns the images to send plus a typed reason for each one left
out. A URL goes to the server as it is once the policy passes it (every server the bot knows
fetches http(s) images itself); with `inline_images = true`, and for a file in a folder [fetch]
allows, it is read here and sent as a data: URL.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import httpx

from core.config import LLMConfig
from core.fetch import Fetcher, FetchError, FetchPolicy, kind_of

MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
Reason = Literal["too_many", "too_large", "not_an_image", "bad_url", "refused", "unreachable", "too_slow"]


def sniff(data: bytes) -> str:
    """The image MIME type told by the file's first bytes, or "" when it is none we send."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return ""


@dataclass(frozen=True, slots=True)
class Image:
    """One picture: an http(s) `url`, or `data` with its `mime` type (from `Image.of_bytes`).

    For a URL, `mime` and `size` are what the platform declared (a Discord attachment's
    content type and size), checked before sending; empty/0 when unknown.
    """

    url: str = ""
    data: bytes = b""
    mime: str = ""
    size: int = 0

    @classmethod
    def of_bytes(cls, data: bytes) -> Image:
        """An image from a file's bytes; the type is read from the bytes ("" when not an image)."""
        return cls(data=data, mime=sniff(data), size=len(data))

    @property
    def content_url(self) -> str:
        """What goes in the request's image_url part: the URL, or a data: URL of the bytes."""
        if self.data:
            return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        return self.url

    def __repr__(self) -> str:  # never dump megabytes of bytes into a log line
        what = self.url[:80] if not self.data else f"{self.mime or '?'}, {len(self.data)} bytes"
        return f"Image({what})"


@dataclass(frozen=True, slots=True)
class Rejected:
    """An image left out, and why (for a log line and an in-character answer)."""

    image: Image
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """The images to send, in order, and those left out."""

    images: tuple[Image, ...] = ()
    rejected: tuple[Rejected, ...] = ()


class ImageError(Exception):
    """An image that can't be sent; `reason` says which limit it broke."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(detail)
        self.reason: Reason = reason


class ImageGate:
    """Checks pictures against the [llm] limits and the fetch policy; downloads those that must go inline."""

    def __init__(
        self,
        cfg: LLMConfig,
        policy: FetchPolicy | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.max_images = cfg.max_images
        self.max_bytes = cfg.max_image_bytes
        self.inline = cfg.inline_images
        self.fetcher = Fetcher(policy, transport)

    async def prepare(self, images: Sequence[Image]) -> Prepared:
        """The images that pass the limits (at most `max_images`), and the reason for each other one."""
        kept: list[Image] = []
        rejected: list[Rejected] = []
        for image in images:
            if len(kept) >= self.max_images:
                rejected.append(Rejected(image, "too_many", f"at most {self.max_images} images per message"))
                continue
            try:
                kept.append(await self.check(image))
            except ImageError as exc:
                rejected.append(Rejected(image, exc.reason, str(exc)))
        return Prepared(tuple(kept), tuple(rejected))

    async def check(self, image: Image) -> Image:
        """The image as it will be sent (bytes re-typed by magic, a URL fetched when inline); ImageError."""
        if image.url.startswith("data:"):
            image = Image.of_bytes(_data_url_bytes(image.url, self.max_bytes))
        if image.data:
            return self._checked_bytes(image.data)
        kind = kind_of(image.url)
        if kind == "local":  # only from a folder [fetch] allow_dirs lists; the server can't read it anyway
            return self._checked_bytes(await self.fetch(image.url))
        if kind != "http":
            raise ImageError("bad_url", f"not an http(s) image URL: {image.url[:80]!r}")
        if image.size > self.max_bytes:
            raise ImageError("too_large", f"{image.size} bytes (the limit is {self.max_bytes})")
        declared = image.mime.split(";", 1)[0].strip().lower()
        if declared and declared not in MIME_TYPES:
            raise ImageError("not_an_image", f"declared as {declared}; png, jpeg, webp or gif only")
        if not self.inline:
            return replace(image, url=await self.handed_on(image.url))
        return self._checked_bytes(await self.fetch(image.url))

    async def handed_on(self, url: str) -> str:
        """The URL as the model server may be given it: checked by the same rules as a download."""
        try:
            return await self.fetcher.check(url)
        except FetchError as exc:
            raise ImageError(exc.reason, str(exc)) from exc

    async def fetch(self, url: str) -> bytes:
        """The file at `url`, read no further than `max_image_bytes`; ImageError when it can't be had."""
        try:
            return await self.fetcher.get(url, self.max_bytes)
        except FetchError as exc:
            raise ImageError(exc.reason, str(exc)) from exc

    def _checked_bytes(self, data: bytes) -> Image:
        if len(data) > self.max_bytes:
            raise ImageError("too_large", f"{len(data)} bytes (the limit is {self.max_bytes})")
        image = Image.of_bytes(data)
        if not image.mime:
            raise ImageError("not_an_image", f"not a png, jpeg, webp or gif (starts {data[:8]!r})")
        return image

    async def close(self) -> None:
        """Release connections."""
        await self.fetcher.close()


def _data_url_bytes(url: str, max_bytes: int) -> bytes:
    head, _, payload = url.partition(",")
    if not head.endswith(";base64"):
        raise ImageError("bad_url", "a data: URL that is not base64")
    if len(payload) // 4 * 3 > max_bytes + 3:  # refuse before decoding megabytes
        raise ImageError("too_large", f"over {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError("bad_url", "a data: URL whose base64 is broken") from exc


