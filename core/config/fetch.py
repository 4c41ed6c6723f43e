"""[fetch]: what a message may make the process download or read."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, field_validator

from core.config.core import Section

# a DNS name: dot-separated labels of letters, digits, '-' and '_' (no scheme, port or path)
_HOST = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")


class FetchConfig(Section):
    """[fetch]: public http(s) addresses only, unless the operator lists a host or a folder here."""

    allow_hosts: list[str] = Field(default_factory=list)
    allow_dirs: list[Path] = Field(default_factory=list)
    deadline: float = Field(15.0, gt=0.0)

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        """Host names (lower case) and addresses or CIDR ranges; anything else is named in the error."""
        out = []
        for entry in value:
            host = entry.strip().lower()
            try:
                out.append(str(ipaddress.ip_network(host.strip("[]"), strict=False)))
                continue
            except ValueError:
                pass
            if not _HOST.match(host):
                raise ValueError(f"{entry!r} is not a host name, an address or a CIDR range (e.g. 127.0.0.1, "
                                 '"10.0.0.0/8", "media.example.com"; no scheme, port or path)')
            out.append(host.rstrip("."))
        return out
