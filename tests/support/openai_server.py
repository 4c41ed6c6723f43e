"""A real local HTTP server speaking the OpenAI chat-completions protocol, for tests."""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import http.client
import json
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FakeOpenAI", "Script"]


@dataclass
class Script:
    """One scripted reply: text (streamed or not), an HTTP error, delays or a dropped connection."""

    text: str = ""
    status: int = 200
    error: str | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = 4
    fail_after_chunks: int | None = None
    finish_reason: str = "stop"
    code: str | None = None  # the error's `code`, e.g. "context_length_exceeded"
    empty_stream: bool = False  # HTTP 200, then no events at all (llama.cpp's answer to an overflow)
    garbled: bool = False  # one stream event is not JSON

    def __post_init__(self) -> None:
        if self.error is not None and self.status < 400:
            self.status = 500


def _error_body(status: int, message: str, code: Any = None) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": code or status}}


def _text_len(content: Any) -> int:
    if isinstance(content, list):  # multi-part content: count the text parts
        return sum(_text_len(p.get("text")) for p in content if isinstance(p, dict))
    return len(content) if isinstance(content, str) else 0


_IMAGE_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/gif": b"GIF8", "image/webp": b"RIFF"}


def _image_problem(part: dict[str, Any]) -> str | None:
    """What is wrong with one content part, as OpenAI would say it (None when it is fine)."""
    kind = part.get("type")
    if kind == "text":
        return None if isinstance(part.get("text"), str) else "a text part needs a string `text`"
    if kind != "image_url":
        return f"Invalid content part type: {kind!r}"
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        return "an image_url part needs `image_url: {url: ...}`"
    if url.startswith(("http://", "https://")):
        return None
    head, _, payload = url.partition(",")
    mime = head.removeprefix("data:").removesuffix(";base64")
    if not head.startswith("data:") or not head.endswith(";base64") or mime not in _IMAGE_MAGIC:
        return f"Invalid image URL: {url[:40]!r}"
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "Invalid base64 image data"
    return None if data.startswith(_IMAGE_MAGIC[mime]) else f"image data is not {mime}"


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    messages = body.get("messages") or []
    prompt = sum(_text_len(m.get("content")) for m in messages if isinstance(m, dict))
    done = len(text)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": done,
        "total_tokens": prompt + done,
    }


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: FakeOpenAI) -> None:
        self.owner = owner
        self.conns: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client hang-ups and sockets cut by stop() are expected; report anything else.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # small SSE writes would otherwise wait on Nagle + delayed ACK (~40 ms per reply)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.owner._lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.owner._lock:
            self.server.conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, code: Any = None) -> None:
        self._send_json(status, _error_body(status, message, code))

    def _drop(self) -> None:
        self.close_connection = True
        _shut(self.connection)

    def _route(self, expected: str) -> bool:
        if self.path.split("?", 1)[0].rstrip("/") == expected:
            return True
        self._send_error(404, f"Invalid URL ({self.command} {self.path})")
        return False

    def _authorized(self) -> bool:
        key = self.server.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_error(401, "Incorrect API key provided.", "invalid_api_key")
        return False

    def do_GET(self) -> None:
        props = self.server.owner.props
        if props is not None and self.path.split("?", 1)[0].rstrip("/") == "/props":  # llama.cpp's route
            return self._send_json(200, props)
        if self._route("/v1/models") and self._authorized():
            models = self.server.owner.models
            card = {"object": "model", "created": 0, "owned_by": self.server.owner.owned_by, **self.server.owner.card}
            data = [{"id": m, **card} for m in models]
            self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._route("/v1/chat/completions"):
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._send_error(400, "Request body is not a JSON object.")
        owner = self.server.owner
        owner._record(body, {k.lower(): v for k, v in self.headers.items()})
        if not self._authorized():
            return
        problem = owner._check_parts(body)
        if problem:
            return self._send_error(400, problem)
        with owner._lock:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            self._reply(body, owner._next_script(body))
        finally:
            with owner._lock:
                owner.in_flight -= 1

    def _reply(self, body: dict[str, Any], script: Script) -> None:
        if script.delay > 0 and self.server.owner._stop.wait(script.delay):
            return self._drop()
        if script.status >= 400:
            return self._send_error(script.status, script.error or "error", script.code)
        stream = bool(body.get("stream"))
        if script.fail_after_chunks is not None and not stream:
            return self._drop()
        model = body.get("model") or "test-model"
        cid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        base = {"id": cid, "created": now, "model": model}
        if stream:
            return self._stream(body, script, base)
        message = {"role": "assistant", "content": script.text}
        end = {"logprobs": None, "finish_reason": script.finish_reason}
        choice = {"index": 0, "message": message, **end}
        usage = _usage(body, script.text)
        self._send_json(
            200,
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage},
        )

    def _stream(self, body: dict[str, Any], script: Script, base: dict[str, Any]) -> None:
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[Any], usage: dict[str, int] | None = None) -> str:
            obj = {**base, "object": "chat.completion.chunk", "choices": choices}
            return json.dumps({**obj, "usage": usage} if with_usage else obj, ensure_ascii=False)

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        text, size = script.text, max(1, script.chunk_size)

        def events() -> Iterator[str]:  # made as they are sent, as a server generating tokens does
            if script.empty_stream:
                return
            yield chunk(choice({"role": "assistant", "content": text[:size]}))
            if script.garbled:
                yield '{"choices": [{"delta": {"content": "x"'
            for i in range(size, len(text), size):
                yield chunk(choice({"content": text[i : i + size]}))
            yield chunk(choice({}, script.finish_reason))
            if with_usage:
                yield chunk([], _usage(body, text))
            yield "[DONE]"

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        stop, gap = self.server.owner._stop, script.chunk_delay
        sent = 0
        try:
            for i, event in enumerate(events()):
                if script.fail_after_chunks is not None and i >= script.fail_after_chunks:
                    return self._drop()
                if i and gap > 0 and stop.wait(gap):
                    return self._drop()
                data = f"data: {event}\n\n".encode()
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                sent += len(data)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client hung up mid-stream
            self.server.owner._streamed(sent, whole=False)
            raise
        self.server.owner._streamed(sent, whole=True)


class FakeOpenAI:
    """Local OpenAI-compatible server in a background thread; use as a context manager."""

    def __init__(self, models: list[str] | None = None, api_key: str | None = None) -> None:
        self.models: list[str] = list(models or ["test-model"])
        self.api_key = api_key
        self.owned_by = "test"  # what /v1/models says owns the models (tells the server kind)
        self.card: dict[str, Any] = {}  # more fields for each model card (e.g. max_model_len)
        self.props: dict[str, Any] | None = None  # set: GET /props answers it (llama.cpp's server)
        self.vision = True  # False: image parts are refused with a 400, as a text-only model's server does
        # image_url URLs received (http(s) or data:), in order; content parts are validated on receipt
        self.images: list[str] = []
        self.default = Script(text="OK")
        self.responder: Callable[[dict[str, Any]], Script | None] | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[Script] = deque()
        # Chat-completion request bodies and their headers (lowercased keys), in order.
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # Bytes of each stream sent, in order, and how many streams the client closed before their end.
        self.stream_bytes: list[int] = []
        self.hung_up = 0
        # Chat requests being processed now, and the most ever processed at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (server must be started)."""
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Base URL for OpenAI clients, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *scripts: Script) -> None:
        """Queue scripted responses (FIFO)."""
        with self._lock:
            self._queue.extend(scripts)

    def clear(self) -> None:
        """Forget received requests and queued scripts; reset max_in_flight."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.headers.clear()
            self.images.clear()
            self.stream_bytes.clear()
            self.hung_up = 0
            self.max_in_flight = self.in_flight

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least n chat requests were received; return them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"got {len(self.requests)} of {n} requests within {timeout}s")
            return list(self.requests)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._cond:
            self.requests.append(body)
            self.headers.append(headers)
            self._cond.notify_all()

    def _streamed(self, sent: int, whole: bool) -> None:
        with self._cond:
            self.stream_bytes.append(sent)
            self.hung_up += not whole
            self._cond.notify_all()

    def wait_for_streams(self, n: int, timeout: float = 5.0) -> list[int]:
        """Block until at least n streams ended (sent whole or cut by the client); their sizes in bytes."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.stream_bytes) >= n, timeout):
                raise TimeoutError(f"{len(self.stream_bytes)} of {n} streams ended within {timeout}s")
            return list(self.stream_bytes)

    def _check_parts(self, body: dict[str, Any]) -> str | None:
        """Validate and record list-form content parts; the first problem found, or None."""
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for part in content:
                problem = _image_problem(part) if isinstance(part, dict) else "a content part is not an object"
                if problem:
                    return problem
                if part.get("type") == "image_url":
                    if not self.vision:
                        return "This model does not support image input."
                    with self._lock:
                        self.images.append(part["image_url"]["url"])
        return None

    def _next_script(self, body: dict[str, Any]) -> Script:
        responder = self.responder
        script = responder(body) if responder is not None else None
        if script is not None:
            return script
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def start(self) -> Self:
        """Start serving and wait until the server answers."""
        if self._server is not None:
            return self
        self._stop = threading.Event()
        self._server = _Server(self)
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="FakeOpenAI", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
                conn.request("GET", "/v1/models")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving, cutting open connections and in-progress (slow) replies."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(server.conns)
        for conn in conns:
            _shut(conn)
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
