"""The rules: which addresses, hosts and folders a message may make the process reach."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import httpx

from core.config import FetchConfig

Why = Literal["bad_url", "refused", "unreachable", "too_large", "too_slow"]
Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
MAX_REDIRECTS = 3

# first match names the refusal; whatever else is not globally routable is "a reserved address"
_REFUSED: tuple[tuple[str, Network], ...] = tuple(
    (why, ip_network(net))
    for why, nets in (
        ("a cloud metadata address", ("169.254.169.254/32", "fd00:ec2::254/128")),
        ("an unspecified address", ("0.0.0.0/8", "::/128")),
        ("a loopback address", ("127.0.0.0/8", "::1/128")),
        ("a private address", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
        ("a shared (CGNAT) address", ("100.64.0.0/10",)),
        ("a link-local address", ("169.254.0.0/16", "fe80::/10")),
        ("a multicast address", ("224.0.0.0/4", "ff00::/8")),
    )
    for net in nets
)
_NAT64 = ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ip_network("::/96")


class FetchError(Exception):
    """A file that could not be had; `reason` says why (the policy, the network, its size, its time)."""

    def __init__(self, reason: Why, detail: str):
        super().__init__(detail[:300])  # hosts and paths come from messages: a log line stays short
        self.reason: Why = reason


def host_of(url: str) -> str:
    """The URL's host for messages, at most 60 characters (never its path or query, which may carry tokens)."""
    try:
        return (httpx.URL(url).host or url)[:60]
    except httpx.InvalidURL:
        return url[:60]


def _embedded_v4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, NAT64, 6to4, IPv4-compatible): it is what is reached."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: Address) -> str:
    """Why a message may not make the process connect to `ip` ("a loopback address"), or "" if public."""
    for why, net in _REFUSED:
        if ip.version == net.version and ip in net:
            return why
    if isinstance(ip, IPv6Address) and (v4 := _embedded_v4(ip)) is not None:
        return refusal(v4)
    if not ip.is_global:
        return "a reserved address"
    return ""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Public http(s) addresses only; the listed hosts, ranges and folders besides."""

    allow_hosts: frozenset[str] = frozenset()
    allow_nets: tuple[Network, ...] = ()
    allow_dirs: tuple[Path, ...] = ()
    deadline: float = 15.0
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def configured(cls, cfg: FetchConfig) -> FetchPolicy:
        """The policy [fetch] describes."""
        return cls.allowing(*cfg.allow_hosts, dirs=cfg.allow_dirs, deadline=cfg.deadline)

    @classmethod
    def allowing(cls, *hosts: str, dirs: tuple[Path, ...] | list[Path] = (), deadline: float = 15.0) -> FetchPolicy:
        """A policy that also allows these host names and addresses/CIDR ranges, and files under `dirs`."""
        names, nets = set(), []
        for host in hosts:
            try:
                nets.append(ip_network(host.strip("[]"), strict=False))
            except ValueError:
                names.add(host.lower().rstrip("."))
        return cls(frozenset(names), tuple(nets), tuple(Path(d).resolve() for d in dirs), deadline)

    def lists(self, host: str) -> bool:
        """Whether the operator listed this host name in allow_hosts."""
        return host.lower().rstrip(".") in self.allow_hosts

    def refused(self, host: str, ip: Address) -> str:
        """Why `host` at `ip` may not be reached ("" when it may): public, or listed by the operator."""
        if self.lists(host) or any(ip.version == n.version and ip in n for n in self.allow_nets):
            return ""
        return refusal(ip)

    def local_file(self, ref: str) -> Path:
        """The real path a file:// URL or absolute path names, when it lies in an allowed folder; FetchError."""
        path = _path_of(ref)
        try:
            real = path.resolve()  # symlinks and '..' resolved before the folder check
        except (OSError, ValueError):
            raise FetchError("bad_url", f"not a usable local path: {ref[:80]!r}") from None
        if not self.allow_dirs:
            raise FetchError("refused", f"a local file ({path.name}): list its folder in [fetch] allow_dirs to allow it")
        if not any(real.is_relative_to(d) for d in self.allow_dirs):
            raise FetchError("refused", f"a local file outside [fetch] allow_dirs ({path.name})")
        return real


def _path_of(ref: str) -> Path:
    if ref.startswith("/"):
        return Path(ref)
    parts = urlsplit(ref)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise FetchError("bad_url", f"not a local file path: {ref[:80]!r}")
    return Path(unquote(parts.path))
