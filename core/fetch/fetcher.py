"""Downloads under a FetchPolicy: checked addresses, manual redirects, a deadline and a size cap."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import socket
import stat
from ipaddress import ip_address
from pathlib import Path
from typing import Literal

import httpx

from core.fetch.policy import Address, FetchError, FetchPolicy, host_of

Kind = Literal["http", "local", "inline", ""]
REDIRECTS = (301, 302, 303, 307, 308)


def kind_of(ref: str) -> Kind:
    """What a reference in a message is: an http(s) URL, a local file, an inline base64:// payload, or "" (none of these)."""
    head = ref[:8].lower()
    if head.startswith(("http://", "https://")):
        return "http"
    if ref.startswith("/") or head.startswith("file:"):
        return "local"
    if head.startswith("base64:/"):
        return "inline"
    return ""


class Fetcher:
    """Fetches what a message points at, never past the policy, its deadline or a size cap."""

    def __init__(self, policy: FetchPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self.policy = policy or FetchPolicy()
        deadline = self.policy.deadline
        # redirects are followed here, one checked hop at a time; no proxy from the environment, which
        # would resolve names itself and reach what the checks refused
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(deadline, connect=min(5.0, deadline)),
                                       follow_redirects=False, trust_env=False, transport=transport)

    async def get(self, ref: str, max_bytes: int) -> bytes:
        """The bytes `ref` points at (http(s), base64://, a file in an allowed folder), at most `max_bytes`; FetchError."""
        try:
            async with asyncio.timeout(self.policy.deadline):
                return await self._get(ref, max_bytes)
        except TimeoutError:
            raise FetchError("too_slow", f"not done within {self.policy.deadline:g} s ([fetch] deadline) "
                                         f"from {host_of(ref)}") from None

    async def check(self, url: str) -> str:
        """The URL as it may be handed to a server that fetches it itself; FetchError when the policy refuses it."""
        parsed = _http_url(url)
        if self.policy.lists(parsed.raw_host.decode("ascii")):
            return str(parsed)  # the operator trusts the name wherever it points, and the server resolves it
        try:
            async with asyncio.timeout(self.policy.deadline):
                await self._addresses(parsed)
        except TimeoutError:
            raise FetchError("too_slow", f"{parsed.host} did not resolve within {self.policy.deadline:g} s") from None
        return str(parsed)  # the form that was checked, so the server reads the same host

    async def _get(self, ref: str, max_bytes: int) -> bytes:
        kind = kind_of(ref)
        if kind == "inline":
            return _inline(ref.split("://", 1)[1], max_bytes)
        if kind == "local":
            return await asyncio.to_thread(_read_file, self.policy.local_file(ref), max_bytes)
        url = _http_url(ref)
        for _ in range(self.policy.max_redirects + 1):
            resp = await self._open(url, await self._addresses(url))
            try:
                location = resp.headers.get("location", "")
                if resp.status_code in REDIRECTS and location:
                    url = _next(url, location)
                    continue
                if resp.status_code != 200:
                    raise FetchError("unreachable", f"HTTP {resp.status_code} from {url.host}")
                return await _body(resp, max_bytes)
            except httpx.HTTPError as exc:
                raise FetchError("unreachable", f"{type(exc).__name__} fetching from {url.host}") from exc
            finally:
                await resp.aclose()
        raise FetchError("unreachable", f"more than {self.policy.max_redirects} redirects (last {url.host})")

    async def _addresses(self, url: httpx.URL) -> list[Address]:
        """Every address the URL's host stands for, each one checked; FetchError if any is refused."""
        host = url.raw_host.decode("ascii")
        try:
            found = [ip_address(host)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, url.port or (443 if url.scheme == "https" else 80),
                                               type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:
                raise FetchError("unreachable", f"{host} does not resolve ({exc})") from None
            found = list(dict.fromkeys(ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        for ip in found:
            if why := self.policy.refused(host, ip):
                what = host if host == str(ip) else f"{host} ({ip})"
                raise FetchError("refused", f"{what} is {why}; list it in [fetch] allow_hosts to allow it")
        if not found:
            raise FetchError("unreachable", f"{host} has no address")
        return found

    async def _open(self, url: httpx.URL, addresses: list[Address]) -> httpx.Response:
        """The response from the first checked address that answers: the name is never resolved again."""
        host = url.raw_host.decode("ascii")
        headers = {"Host": url.netloc.decode("ascii")}
        # TLS still names (and verifies) the host, though the connection goes to the checked address
        extensions = {"sni_hostname": host} if url.scheme == "https" and not _literal(host) else {}
        failed: Exception | None = None
        for ip in addresses:
            request = self._http.build_request("GET", url.copy_with(host=str(ip)), headers=headers, extensions=extensions)
            try:
                return await self._http.send(request, stream=True)
            except httpx.ConnectError as exc:
                failed = exc
            except httpx.HTTPError as exc:
                raise FetchError("unreachable", f"{type(exc).__name__} fetching from {url.host}") from exc
        raise FetchError("unreachable", f"{type(failed).__name__} fetching from {url.host}")

    async def close(self) -> None:
        """Release connections."""
        await self._http.aclose()


def _http_url(ref: str) -> httpx.URL:
    """`ref` as an http(s) URL with a host and no user name; FetchError otherwise."""
    try:
        url = httpx.URL(ref)
    except httpx.InvalidURL:
        raise FetchError("bad_url", f"not a valid URL: {ref[:80]!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchError("bad_url", f"not an http(s) URL: {ref[:80]!r}")
    if url.userinfo:  # "http://cdn@10.0.0.1/" reads differently to different parsers
        raise FetchError("bad_url", f"a URL with a user name ({url.host})")
    return url


def _next(url: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect points, checked like any URL a message gives."""
    try:
        target = url.join(location)
    except httpx.InvalidURL:
        raise FetchError("bad_url", f"a redirect to an invalid URL from {url.host}") from None
    return _http_url(str(target))


def _literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


async def _body(resp: httpx.Response, max_bytes: int) -> bytes:
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise FetchError("too_large", f"{length} bytes (the limit is {max_bytes})")
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError("too_large", f"over {max_bytes} bytes")
    return bytes(body)


def _inline(payload: str, max_bytes: int) -> bytes:
    if len(payload) // 4 * 3 > max_bytes + 3:  # refuse before decoding megabytes
        raise FetchError("too_large", f"over {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FetchError("bad_url", "a base64:// payload that is not base64") from exc


def _read_file(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes; a FIFO or device (which could block or never end) is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FetchError("unreachable", f"{path.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FetchError("refused", f"{path.name} is not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FetchError("too_large", f"over {max_bytes} bytes")
    return data
