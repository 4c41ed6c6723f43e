"""Fetching what a message points at (a picture, a voice message) under one policy.

Everything a message makes the process fetch, or hands to a server that fetches it, goes through
`Fetcher`: http(s) only; public addresses only, checked on every address a name resolves to and
again after each redirect, and the connection made to the address that was checked; private hosts
and local files only where [fetch] lists them; an overall deadline and a size cap per download.

    FetchError(reason, detail)   reason: "bad_url" | "refused" | "unreachable" | "too_large" | "too_slow"
"""

from core.fetch.fetcher import Fetcher, kind_of
from core.fetch.policy import FetchError, FetchPolicy, Why, host_of, refusal

__all__ = ["FetchError", "FetchPolicy", "Fetcher", "Why", "host_of", "kind_of", "refusal"]
