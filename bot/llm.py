"""The model behind the character: any OpenAI-compatible chat-completions server.

Talks through langchain-openai (the design's chain library), kept behind this small interface so
the rest of the bot sees only `ChatModel`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx

from bot.config import LLMConfig

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI


class LLMError(Exception):
    """The model server failed, timed out or is unreachable."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt."""

    role: Literal["system", "user", "assistant"]
    content: str


class ChatModel(Protocol):
    """What the pipeline needs from a model."""

    name: str

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Yield the reply text as it is generated."""
        ...

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> str:
        """The whole reply at once (background jobs: summaries, facts)."""
        ...

    async def models(self) -> list[str]:
        """Model ids the server offers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _to_langchain(messages: Sequence[ChatMessage]) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m.role](content=m.content) for m in messages]


class OpenAIChat:
    """Chat completions over HTTP with streaming; at most `max_concurrency` requests in flight."""

    def __init__(self, cfg: LLMConfig):
        self.cfg = cfg
        self.name = cfg.model or "(server default)"
        self._gate = asyncio.Semaphore(cfg.max_concurrency)
        key = cfg.api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/") + "/", headers=headers, timeout=cfg.request_timeout
        )
        # building the client is slow (~1 s): do it at start when the model name is known
        self._chat: ChatOpenAI | None = self._build(cfg.model) if cfg.model else None

    async def _client(self) -> ChatOpenAI:
        if self._chat is None:
            self._chat = self._build(self.cfg.model or (await self.models() or ["default"])[0])
        return self._chat

    def _build(self, model: str) -> ChatOpenAI:
        # imported here: langchain-openai takes ~2 s to import, which commands like `persona list` skip
        from langchain_openai import ChatOpenAI

        self.name = model
        return ChatOpenAI(
            model=model,
            base_url=self.cfg.base_url,
            api_key=self.cfg.api_key.get_secret_value() or "not-needed",  # type: ignore[arg-type]
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            max_tokens=self.cfg.max_tokens,  # type: ignore[call-arg]
            timeout=self.cfg.request_timeout,
            max_retries=0,
            extra_body=self._extra_body(),
        )

    def _extra_body(self) -> dict[str, float]:
        """Sampling fields beyond OpenAI's; left out at their neutral values for strict servers."""
        extra: dict[str, float] = {}
        if self.cfg.top_k:
            extra["top_k"] = self.cfg.top_k
        if self.cfg.repetition_penalty != 1.0:
            extra["repetition_penalty"] = self.cfg.repetition_penalty
        return extra

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Yield the reply text as it is generated."""
        async with self._gate:
            try:
                chat = await self._client()
                async for chunk in chat.astream(_to_langchain(messages)):
                    if isinstance(chunk.content, str) and chunk.content:
                        yield chunk.content
            except (LLMError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the SDK raises many types; all mean "no reply"
                raise LLMError(_brief(exc)) from exc

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> str:
        """The whole reply at once (background jobs: summaries, facts)."""
        async with self._gate:
            try:
                chat = (await self._client()).bind(max_tokens=max_tokens, temperature=temperature)
                result = await chat.ainvoke(_to_langchain(messages))
            except Exception as exc:
                raise LLMError(_brief(exc)) from exc
        return result.content if isinstance(result.content, str) else str(result.content)

    async def models(self) -> list[str]:
        """Model ids the server offers (GET /v1/models)."""
        try:
            resp = await self._http.get("models")
            resp.raise_for_status()
            return [m["id"] for m in resp.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise LLMError(f"{self.cfg.base_url}/models: {_brief(exc)}") from exc

    async def close(self) -> None:
        """Release connections."""
        await self._http.aclose()


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]
