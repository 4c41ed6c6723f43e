"""A real HTTP server on 127.0.0.1 that imitates vits-simple-api, returning real audio."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf

SPEAKERS = {
    "VITS": [{"id": 0, "name": "ホロ", "lang": ["ja"]}, {"id": 1, "name": "綾地寧々", "lang": ["ja", "zh"]}],
    "BERT-VITS2": [{"id": 0, "name": "赫萝", "lang": ["zh", "ja"]}],
    "GPT-SOVITS": [{"id": 0, "name": "horo_ref", "lang": ["auto"]}],
    "W2V2-VITS": [],
}
_COMMON = {"text", "id", "format", "lang", "length", "noise", "noisew", "segment_size", "api_key"}
ROUTES = {
    "/voice/vits": ("VITS", _COMMON),
    "/voice/bert-vits2": ("BERT-VITS2", _COMMON | {"sdp_ratio", "emotion", "style_text", "style_weight"}),
    "/voice/gpt-sovits": (
        "GPT-SOVITS",
        {"text", "id", "format", "lang", "segment_size", "api_key", "preset", "reference_audio", "prompt_text",
         "prompt_lang", "top_k", "top_p", "temperature", "speed"},
    ),
}
SF_FORMATS = {"wav": ("WAV", "PCM_16"), "ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", None)}
RATE = 22050  # what VITS models commonly produce; not an Opus rate, so the bot must resample


def speech_like(text: str, length: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A tone whose duration grows with the text (0.12 s a character), like speech does."""
    n = int(rate * max(0.3, 0.12 * len(text)) * length)
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@dataclass
class Received:
    """One synthesis request as the server parsed it."""

    route: str
    method: str
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


class FakeVits:
    """vits-simple-api routes, parameters, API-key auth and JSON errors; `delay` slows synthesis."""

    def __init__(self, api_key: str | None = None, delay: float = 0.0):
        self.api_key = api_key
        self.delay = delay
        self.fail: str | None = None  # when set, synthesis answers a JSON error with this message
        self.fail_status = 500
        self.received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Serve on a free port in a daemon thread."""
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_owner: FakeVits
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"status": "error", "message": message}).encode(), "application/json")

    def _params(self) -> dict[str, str]:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if raw and ctype.startswith("application/json"):
            params.update({k: str(v) for k, v in json.loads(raw).items()})
        elif raw:
            params.update({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
        return params

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        owner = self.server_owner
        route = urlsplit(self.path).path.rstrip("/")
        params = self._params()
        if route == "/voice/speakers":
            return self._send(200, json.dumps(SPEAKERS, ensure_ascii=False).encode(), "application/json")
        if route not in ROUTES:
            return self._send(404, b"Not Found", "text/html")
        if owner.api_key is not None and owner.api_key not in (self.headers.get("X-API-KEY"), params.get("api_key")):
            return self._send(401, b"Invalid API Key", "text/plain")
        owner.received.append(Received(route, self.command, params, {k.lower(): v for k, v in self.headers.items()}))
        kind, allowed = ROUTES[route]
        unknown = sorted(set(params) - allowed)
        if unknown:
            return self._error(400, f"unknown parameter {unknown[0]}")
        text = params.get("text", "")
        if not text:
            return self._error(400, "text is empty")
        sid = int(params.get("id", "0"))
        if not 0 <= sid < len(SPEAKERS[kind]):
            return self._error(400, f"id {sid} does not exist")
        fmt = params.get("format", "wav")
        if fmt not in SF_FORMATS:
            return self._error(400, f"Unsupported format: {fmt}")
        if owner.fail:
            return self._error(owner.fail_status, owner.fail)
        if owner.delay and owner._stop.wait(owner.delay):
            return
        container, subtype = SF_FORMATS[fmt]
        buf = io.BytesIO()
        sf.write(buf, speech_like(text, float(params.get("length", "1.0"))), RATE, format=container, subtype=subtype)
        self._send(200, buf.getvalue(), f"audio/{fmt}")
