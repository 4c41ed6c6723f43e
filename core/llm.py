"""The model behind the character: any OpenAI-compatible chat-completions server.

A small HTTP client behind the `ChatModel` interface: the chat completions stream over aiohttp (its
parser is compiled: a real server sends an event per token), the rest (probe, models, token counts)
over httpx. Every request carries a reply cap the server honours (`max_tokens`), streams (so an
abandoned request is closed and the server stops generating), and waits for a slot: replies before
background work, replies of different conversations in turn. The caller learns when its request leaves the queue (`on_sent`):
the server is only judged on the time after that. A server that ignores the cap is cut off by the
client: past `reply_chars(max_tokens)` characters, or a stream line longer than `LONGEST_LINE`, the
stream is closed whatever the server goes on sending.

A message may carry images: to a server that can see (`profile.vision`) its content goes in
OpenAI's list form, a text part then `image_url` parts; otherwise, and for every message without
images, the content stays a plain string.

Errors::

    LLMError                 no usable reply; `server_fault` says whether the server is to blame
    ├── ContextOverflow      the prompt is longer than the server's context (a 400, or an empty stream)
    └── BrokenStream         the stream stopped or was garbled after it had started
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import httpx

from core.config import LLMConfig
from core.images import Image
from core.serving import ServerProfile, count_with, probe_server
from core.slots import Priority, Slots
from core.sse import LineTooLong, head, lines, text_of

log = logging.getLogger(__name__)
PROBE_EVERY = 30.0  # seconds between attempts to learn about a server that did not answer
# generous on purpose, so an honest server's reply is never cut: Chinese runs 1-2 characters a
# token, English about 4, runs of spaces or symbols more
CHARS_PER_TOKEN = 8
MAX_REPLY_CHARS = 16_000  # whatever max_tokens says
LONGEST_LINE = 256 * 1024  # characters in one stream line (one event: a whole reply fits, JSON-escaped)
ERROR_BODY = 64 * 1024  # bytes of an error answer read for its message
# llama.cpp's grammar (GBNF) for a reply without Chinese or Japanese characters or their punctuation
NO_CJK_GRAMMAR = r"root ::= [^\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]*"
_MAX_CONTEXT = re.compile(r"maximum context length is (\d+)")
_PROMPT_TOKENS = re.compile(r"(\d+) in the messages|(\d+) in your prompt|has (\d+) input tokens|(\d+) prompt tokens")


class LLMError(Exception):
    """The model server gave no usable reply."""

    server_fault = True


class ContextOverflow(LLMError):
    """The prompt did not fit the server's context; the request, not the server, was at fault."""

    server_fault = False

    def __init__(self, message: str, limit: int | None = None, requested: int | None = None):
        super().__init__(message)
        self.limit = limit
        self.requested = requested


class RequestRejected(LLMError):
    """A 4xx caused by this one request (bad parameter, unknown model): not the server's fault."""

    server_fault = False


class BrokenStream(LLMError):
    """The stream was cut or garbled after it started."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt."""

    role: Literal["system", "user", "assistant"]
    content: str
    images: tuple[Image, ...] = ()


def reply_chars(max_tokens: int) -> int:
    """The most characters a reply capped at `max_tokens` may carry, whatever the server sends."""
    return min(MAX_REPLY_CHARS, max(1, max_tokens) * CHARS_PER_TOKEN)


class ChatModel(Protocol):
    """What the pipeline needs from a model."""

    name: str
    profile: ServerProfile

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        priority: Priority = "reply",
        queue: str = "",
        on_sent: Callable[[], None] | None = None,
        steady: bool = False,
        script: str = "",
    ) -> AsyncGenerator[str, None]:
        """Yield the reply text as it is generated (closing the generator ends the request).

        `steady`: the second try after a broken reply, with lower temperature and a stronger
        repetition penalty ([llm] steady_temperature, steady_repetition_penalty). `script`: "en"
        keeps an English reply free of Chinese and Japanese characters where the server takes a
        grammar ([llm] script_grammar).

        `queue` names the conversation whose turn it waits for; `on_sent` is called once the request
        has its slot, just before it goes to the server (what it raises cancels the request)."""
        ...

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float,
        priority: Priority = "background",
    ) -> str:
        """The whole reply at once (background jobs: summaries, facts, translations)."""
        ...

    async def models(self) -> list[str]:
        """Model ids the server offers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class OpenAIChat:
    """Chat completions over HTTP with streaming; at most `max_concurrency` requests in flight."""

    def __init__(self, cfg: LLMConfig):
        self.cfg = cfg
        self.name = cfg.model or "(server default)"
        self.slots = Slots(cfg.max_concurrency)
        self.profile = ServerProfile.configured(cfg)
        key = cfg.api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(cfg.request_timeout, connect=min(5.0, cfg.request_timeout))
        limits = httpx.Limits(max_connections=cfg.max_concurrency + 4)
        self._http = httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/") + "/", headers=headers, timeout=timeout, limits=limits
        )
        self._headers = headers
        self._streams: aiohttp.ClientSession | None = None  # made on the first stream, inside the loop
        self._probed_at = float("-inf")
        self.last_usage: dict[str, Any] = {}

    def _session(self) -> aiohttp.ClientSession:
        """The streams' session: the same base URL, key, timeouts (the read timeout between two pieces)
        and connection bound as the httpx client; proxies from the environment, as httpx takes them."""
        if self._streams is None or self._streams.closed:
            cfg = self.cfg
            self._streams = aiohttp.ClientSession(
                base_url=cfg.base_url.rstrip("/") + "/", headers=self._headers, trust_env=True,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(5.0, cfg.request_timeout),
                                              sock_read=cfg.request_timeout),
                connector=aiohttp.TCPConnector(limit=cfg.max_concurrency + 4),
            )
        return self._streams

    async def probe(self) -> ServerProfile:
        """Ask the server what it is (kind, context size, tokenizer); once it has answered, cached."""
        now = time.monotonic()
        if not self.profile.reachable and now - self._probed_at >= PROBE_EVERY:
            self._probed_at = now
            await probe_server(self._http, self.cfg, self.profile)
            if not self.cfg.model and self.profile.models:
                self.name = self.profile.models[0]
        return self.profile

    def body(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float | None, steady: bool = False,
        script: str = "",
    ) -> dict[str, Any]:
        """The request body for this server kind: only fields it honours."""
        if steady:
            temperature = min(self.cfg.temperature, self.cfg.steady_temperature)
        penalty = max(self.cfg.repetition_penalty, self.cfg.steady_repetition_penalty) if steady \
            else self.cfg.repetition_penalty
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": self._content(m)} for m in messages],
            "stream": True,
            "temperature": self.cfg.temperature if temperature is None else temperature,
            "top_p": self.cfg.top_p,
        }
        if self.cfg.model or self.name != "(server default)":
            body["model"] = self.cfg.model or self.name
        kind = self.profile.kind
        # cloud APIs want max_completion_tokens; llama.cpp and older lmdeploy/vLLM read only max_tokens
        body["max_completion_tokens" if kind == "openai" else "max_tokens"] = max_tokens
        body["stream_options"] = {"include_usage": True}
        if kind != "openai":  # sampling fields beyond OpenAI's, spelled the way each server reads them
            if self.cfg.top_k:
                body["top_k"] = self.cfg.top_k
            if penalty != 1.0:
                field = "repeat_penalty" if kind == "llamacpp" else "repetition_penalty"
                body[field] = penalty
            if script == "en" and kind == "llamacpp" and self.cfg.script_grammar:
                body["grammar"] = NO_CJK_GRAMMAR
        elif steady and penalty > 1.0:  # OpenAI's own field against repeats (-2..2)
            body["frequency_penalty"] = min(2.0, round((penalty - 1.0) * 2, 2))
        return body

    def _content(self, m: ChatMessage) -> str | list[dict[str, Any]]:
        """A plain string, or text and image parts when the message has images the server can see."""
        if not m.images or not self.profile.vision:
            return m.content
        text = [{"type": "text", "text": m.content}] if m.content else []
        return text + [{"type": "image_url", "image_url": {"url": i.content_url}} for i in m.images]

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        priority: Priority = "reply",
        queue: str = "",
        on_sent: Callable[[], None] | None = None,
        steady: bool = False,
        script: str = "",
    ) -> AsyncGenerator[str, None]:
        """Yield the reply text as it is generated (closing the iterator closes the request)."""
        async with self.slots.take(priority, queue):
            if on_sent is not None:
                on_sent()
            await self.probe()  # talking to the server: timed like the request itself
            cap = max_tokens or self.cfg.max_tokens
            body = self.body(messages, cap, None, steady, script)
            async for delta in self._sse(body, self._estimate(messages), reply_chars(cap)):
                yield delta

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float,
        priority: Priority = "background",
    ) -> str:
        """The whole reply, streamed under the hood so a cancelled job stops the server too."""
        await self.probe()
        body = self.body(messages, max_tokens, temperature)
        async with self.slots.take(priority):
            return "".join([d async for d in self._sse(body, self._estimate(messages), reply_chars(max_tokens))])

    async def count(self, text: str) -> int | None:
        """Tokens in `text` by the server's own tokenizer, or None when it has no tokenizer endpoint."""
        await self.probe()
        if not self.profile.tokenizer:
            return None
        return await count_with(self._http, self.profile.tokenizer, text, self.name, self.cfg.base_url)

    def _estimate(self, messages: Sequence[ChatMessage]) -> int:
        # what the reported usage calibrates; a picture's real cost differs by model, so a prompt
        # carrying one must not skew the text ratio (0: no calibration)
        if self.profile.vision and any(m.images for m in messages):
            return 0
        return sum(self.profile.count_message(m.content) for m in messages)

    async def _sse(self, body: dict[str, Any], estimate: int, chars: int) -> AsyncIterator[str]:
        """The reply's text, at most `chars` characters; past that the stream is closed."""
        got_data = finished = opened = done = False
        lines_left = chars + 1024  # events and comments: an honest stream has fewer than it has characters
        try:
            async with self._session().post("chat/completions", json=body) as resp:
                if resp.status >= 400:
                    raise _http_error(resp.status, await head(resp, ERROR_BODY))
                opened = True
                async for line in lines(text_of(resp), LONGEST_LINE):
                    if not line:
                        continue
                    lines_left -= 1
                    if lines_left < 0:
                        _went_on(body)
                        return  # leaving the block closes the connection: the server stops generating
                    if done or not line.startswith("data:"):
                        continue  # comments (": ping"), separators; after [DONE], read to the end to reuse the connection
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        continue
                    got_data = True
                    delta, done = self._delta(data, estimate)
                    finished = finished or done
                    if len(delta) > chars:  # the server ignored max_tokens
                        if chars:
                            yield delta[:chars]
                        _went_on(body)
                        return
                    if delta:
                        chars -= len(delta)
                        yield delta
        except LineTooLong as exc:
            raise BrokenStream(str(exc)) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            if got_data:
                raise BrokenStream(f"stream cut: {_brief(exc)}") from exc
            if not opened:
                raise LLMError(_brief(exc)) from exc
            raise await self._diagnose(body, f"stream cut before any data: {_brief(exc)}") from exc
        if done:
            return
        if not got_data:
            # llama.cpp answers a prompt over its context with an empty 200 stream
            raise await self._diagnose(body, "the server sent an empty stream")
        if not finished:
            raise BrokenStream("stream ended before the reply was finished")

    async def _diagnose(self, body: dict[str, Any], what: str) -> LLMError:
        """Why a stream came back empty: the same prompt once more, unstreamed, for one token.

        A prompt over the context is refused at once with the numbers (as a 400); otherwise the
        server itself is at fault.
        """
        probe = {**body, "stream": False, "max_tokens": 1}
        probe.pop("stream_options", None)
        probe.pop("max_completion_tokens", None)
        for tries_left in (1, 0):
            try:  # the failed stream may have left a dead pooled connection: one retry
                async with self._session().post("chat/completions", json=probe) as resp:
                    status, text = resp.status, await head(resp, ERROR_BODY)
                break
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not tries_left:
                    return LLMError(f"{what}; then {_brief(exc)}")
        if status >= 400:
            err = _http_error(status, text)
            return err if isinstance(err, ContextOverflow) else LLMError(f"{what}; then {err}")
        return LLMError(what)

    def _delta(self, data: str, estimate: int) -> tuple[str, bool]:
        """One event's text, and whether it carries a finish reason."""
        try:
            event = json.loads(data)
        except json.JSONDecodeError as exc:
            raise BrokenStream(f"garbled stream event: {data[:60]!r}") from exc
        if not isinstance(event, dict):
            raise BrokenStream(f"garbled stream event: {data[:60]!r}")
        if "error" in event:
            raise _http_error(500, json.dumps(event))
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.last_usage = usage
            if not self.profile.tokenizer and isinstance(usage.get("prompt_tokens"), int):
                self.profile.learn_ratio(estimate, usage["prompt_tokens"])
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return "", False
        done = bool(choices[0].get("finish_reason"))
        delta = choices[0].get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        return (content if isinstance(content, str) else ""), done

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
        if self._streams is not None:
            await self._streams.close()


def _http_error(status: int, text: str) -> LLMError:
    """The right error for an HTTP error answer."""
    message = text
    try:
        err = json.loads(text).get("error", {})
        message = err.get("message", text) if isinstance(err, dict) else str(err)
        code = err.get("code") if isinstance(err, dict) else None
    except (ValueError, AttributeError):
        code = None
    brief = f"HTTP {status}: {message.strip()[:240]}"
    limit = _MAX_CONTEXT.search(message)
    if code == "context_length_exceeded" or limit or "context length" in message.lower():
        prompt = _PROMPT_TOKENS.search(message)
        tokens = next((int(g) for g in prompt.groups() if g), None) if prompt else None
        return ContextOverflow(brief, int(limit.group(1)) if limit else None, tokens)
    if 400 <= status < 500 and status not in (408, 429):
        return RequestRejected(brief)
    return LLMError(brief)


def _went_on(body: dict[str, Any]) -> None:
    cap = body.get("max_tokens", body.get("max_completion_tokens"))
    log.warning("the model server went on past the reply cap (max_tokens %s); the reply was cut and the stream closed", cap)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]
