"""A real local HTTP server speaking OpenAI's transcription API (POST /v1/audio/transcriptions).

It parses the multipart form the way the real endpoint does: a `file` part with a file name, a
`model` field, optional `language` and `response_format` (json, text or verbose_json), and it
refuses files whose bytes are not one of the formats the endpoint takes, with OpenAI's error shape.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FakeTranscriber", "Upload"]

FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")


@dataclass
class Upload:
    """One transcription request as the server parsed it."""

    model: str
    data: bytes
    filename: str
    content_type: str
    language: str = ""
    response_format: str = "json"
    headers: dict[str, str] = field(default_factory=dict)


def sniff(data: bytes) -> str:
    """The container told by the file's first bytes, as the real server decodes it ("" if none)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"OggS"):
        return "ogg"
    if data.startswith(b"fLaC"):
        return "flac"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return ""


def _form(content_type: str, body: bytes) -> dict[str, Message]:
    """The parts of a multipart/form-data body by field name."""
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        return {}
    parts: dict[str, Message] = {}
    for part in msg.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            parts[name] = part
    return parts


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, param: str | None = None) -> None:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        err = {"error": {"message": message, "type": kind, "param": param, "code": None}}
        self._send(status, json.dumps(err).encode())

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        owner = self.server.owner
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/audio/transcriptions":
            return self._error(404, f"Invalid URL (POST {self.path})")
        if owner.api_key is not None and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            return self._error(401, "Incorrect API key provided.")
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._error(400, "Expected multipart/form-data")
        parts = _form(content_type, raw)
        upload = parts.get("file")
        if upload is None or not upload.get_filename():
            return self._error(400, "you must provide a file", "file")
        if "model" not in parts:
            return self._error(400, "you must provide a model parameter", "model")

        def text(name: str, default: str = "") -> str:
            part = parts.get(name)
            return part.get_payload(decode=True).decode() if part is not None else default  # type: ignore[union-attr]

        received = Upload(
            model=text("model"),
            data=upload.get_payload(decode=True),  # type: ignore[arg-type]
            filename=str(upload.get_filename()),
            content_type=upload.get_content_type(),
            language=text("language"),
            response_format=text("response_format", "json"),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        owner._record(received)
        if owner.fail_status:
            return self._error(owner.fail_status, "the transcription server is failing")
        if received.model not in owner.models:
            return self._error(404, f"The model `{received.model}` does not exist", "model")
        if received.response_format not in ("json", "text", "verbose_json"):
            return self._error(400, f"response_format {received.response_format!r} is not supported", "response_format")
        if not sniff(received.data):
            return self._error(400, f"Invalid file format. Supported formats: {list(FORMATS)}", "file")
        said = owner.responder(received) if owner.responder is not None else owner.text
        if received.response_format == "text":
            return self._send(200, said.encode(), "text/plain; charset=utf-8")
        answer: dict[str, Any] = {"text": said}
        if received.response_format == "verbose_json":
            answer |= {"task": "transcribe", "language": received.language or "zh", "segments": []}
        self._send(200, json.dumps(answer, ensure_ascii=False).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: FakeTranscriber) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeTranscriber:
    """A transcription server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, text: str = "你好", models: tuple[str, ...] = ("whisper-1",), api_key: str | None = None):
        self.text = text  # what every upload "says", unless `responder` answers
        self.models = models
        self.api_key = api_key
        self.fail_status = 0  # non-zero: answer every upload with this HTTP error
        self.responder: Callable[[Upload], str] | None = None
        self.uploads: list[Upload] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT (the API is under /v1)."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _record(self, upload: Upload) -> None:
        with self._lock:
            self.uploads.append(upload)

    def start(self) -> Self:
        """Start serving (the socket is listening when this returns)."""
        if self._server is None:
            self._server = _Server(self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
