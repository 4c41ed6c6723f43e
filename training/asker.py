"""Asking an OpenAI-compatible model for strict JSON, with retries and bounded concurrency."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from training.errors import TrainingError

T = TypeVar("T")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


@dataclass(frozen=True)
class Endpoint:
    """Where to ask: the [llm] server or the --base-url/--model/--api-key flags."""

    base_url: str
    model: str = ""
    api_key: str = ""
    timeout: float = 120.0


class AskError(Exception):
    """One attempt failed (HTTP error, not JSON, wrong shape); the asker may retry."""


def extract_json(text: str) -> Any:
    """The JSON value in a reply: code fences and text around one object/array are tolerated."""
    text = _FENCE.sub("", text.strip())
    try:
        return json.loads(text)
    except ValueError:
        pass
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise AskError("reply has no JSON")
    start = min(starts)
    end = max(text.rfind("}"), text.rfind("]"))
    try:
        return json.loads(text[start : end + 1])
    except ValueError as exc:
        raise AskError(f"reply is not valid JSON: {exc}") from None


class JsonAsker:
    """Sends chat requests and parses JSON replies; at most `concurrency` requests at once."""

    def __init__(self, endpoint: Endpoint, *, concurrency: int = 4, retries: int = 3, backoff: float = 1.0):
        self.endpoint = endpoint
        self.retries = retries
        self.backoff = backoff
        self.requests = 0
        self.concurrency = concurrency
        self._gate = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=endpoint.base_url.rstrip("/") + "/", headers=headers, timeout=endpoint.timeout
        )
        self._model: str | None = endpoint.model or None

    async def check(self) -> None:
        """Fail fast, with one line, when nothing answers at the endpoint (instead of N pieces × retries)."""
        try:
            await self._http.get("models")
        except httpx.TransportError as exc:
            raise TrainingError(f"{self.endpoint.base_url}: no model server answers ({type(exc).__name__})") from None
        await self.model()

    async def model(self) -> str:
        """The model to ask: the configured one, else the first the server lists (lmdeploy serves one)."""
        if self._model is None:
            try:
                resp = await self._http.get("models")
                resp.raise_for_status()
                self._model = str(resp.json()["data"][0]["id"])
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
                raise TrainingError(
                    f"{self.endpoint.base_url}: cannot list models ({type(exc).__name__}); pass --model"
                ) from None
        return self._model

    async def ask(
        self, messages: list[dict[str, str]], parse: Callable[[Any], T], *, temperature: float = 0.7,
        max_tokens: int = 2048,
    ) -> T:
        """Ask until `parse(json)` accepts the reply; TrainingError after 1 + retries attempts."""
        model = await self.model()
        body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt and self.backoff:
                await asyncio.sleep(self.backoff * attempt)
            try:
                async with self._gate:
                    self.requests += 1
                    text = await self._post(body)
                return parse(extract_json(text))
            except AskError as exc:
                problem = str(exc)
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unexpected JSON shape: {exc}"
        raise TrainingError(f"no usable answer after {self.retries + 1} attempts: {problem}")

    async def _post(self, body: dict[str, Any]) -> str:
        try:
            resp = await self._http.post("chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise AskError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise AskError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise AskError("malformed chat completion") from None
        if not isinstance(content, str):
            raise AskError("reply has no text")
        return content

    async def close(self) -> None:
        """Release connections."""
        await self._http.aclose()


def strings(value: Any, key: str, *, at_least: int = 1) -> list[str]:
    """`value[key]` as a list of non-empty strings (ValueError otherwise): the strict shape check."""
    if not isinstance(value, dict) or not isinstance(value.get(key), list):
        raise ValueError(f"expected an object with a list '{key}'")
    items = [s.strip() for s in value[key] if isinstance(s, str) and s.strip()]
    if len(items) != len(value[key]) or len(items) < at_least:
        raise ValueError(f"'{key}' must hold at least {at_least} non-empty strings")
    return items
