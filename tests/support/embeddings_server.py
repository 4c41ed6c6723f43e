"""A real local HTTP server speaking OpenAI's embeddings API (POST /v1/embeddings), with vectors the test chooses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class EmbeddingsServer:
    """Answers each text with `vector(text)`; records every request; its status, body and delay are the test's."""

    def __init__(self, vector: Callable[[str], list[float]], dim: int = 0) -> None:
        self.vector = vector
        self.dim = dim  # for a vector function that reads it (a test may change the size mid-way)
        self.status = 200
        self.body: str | None = None  # None: real vectors (or, on an error status, an OpenAI-shaped error)
        self.delay = 0.0
        self.requests: list[tuple[dict[str, Any], str]] = []  # (payload, Authorization header)
        self.spans: list[tuple[float, float]] = []  # (arrived, answered) of each request, monotonic, in request order
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((payload, self.headers.get("Authorization", "")))
                owner.spans.append((time.monotonic(), 0.0))
                number = len(owner.spans) - 1
                time.sleep(owner.delay)
                if owner.body is not None:
                    body = owner.body
                elif owner.status == 200:
                    body = json.dumps({"object": "list", "data": [
                        {"index": i, "embedding": owner.vector(t)} for i, t in enumerate(payload["input"])]})
                else:
                    body = '{"error": {"message": "model is loading"}}'
                owner.spans[number] = (owner.spans[number][0], time.monotonic())
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def inputs(self) -> list[tuple[str, str]]:
        """Every text asked for, with the model it was asked of, in order."""
        return [(payload["model"], text) for payload, _ in self.requests for text in payload["input"]]

    def texts(self, since: int = 0) -> list[str]:
        """The texts asked for since position `since` of `inputs`."""
        return [t for _, t in self.inputs[since:]]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
