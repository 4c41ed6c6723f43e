"""Prometheus metrics of one bot process, and the exporter that serves them ([metrics], off by default).

The message path records through the small functions below (`message_in`, `reply`, `first_token`,
...). They do nothing until `serve` has built the metrics, so with [metrics] off nothing is counted
and nothing listens. Metric names (counters get `_total` on the wire):

    bot_messages_in{platform}        messages handed to the pipeline
    bot_replies{mode}                replies by how they were made: model, offline, fallback, canned, reaction
    bot_messages_lost{platform}      messages dropped because of an error; must stay 0
    bot_first_token_seconds          a message's arrival to the model's first token (queueing included)
    bot_queue_seconds                a message's arrival to its model request being sent (the bot's own queue)
    bot_reply_seconds                a message's arrival to its finished reply
    bot_model_errors{kind}           model requests with no usable reply: server, overflow, rejected,
                                     broken_stream, first_token_timeout, stall_timeout
    bot_model_breaker_open           1 while the model is skipped after a failure (`retry_after`)
    bot_model_breaker_openings       times the breaker opened (from closed)
    bot_messages_shed                messages answered with an example line after `max_queue_seconds` waiting
    bot_busy_notices                 in-character "busy" lines posted to waiting conversations
    bot_model_queue_depth            replies waiting for a model slot
    bot_store_errors                 store failures that cost a message
    bot_reply_defects{kind}          broken model replies caught before showing: loop, symbols, language, overrun, prompt
    bot_reply_check_seconds          time the output checks spent on one model reply
    bot_reply_repairs{outcome}       what was done with one: cut (its clean sentences kept), retried (asked once
                                     more with steadier sampling), offline (an in-character line instead)
    bot_store_available              0 while the store is away and exchanges wait in memory
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from core.config import MetricsConfig
from core.config.core import exposed_without_token
from core.slots import Slots
from memory.store import StoreError

log = logging.getLogger(__name__)

_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_REPLY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
_QUEUE_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 180.0)
_CHECK_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)
_ERROR_KINDS = {"ContextOverflow": "overflow", "RequestRejected": "rejected", "BrokenStream": "broken_stream"}


class Metrics:
    """Every metric, on a registry of its own (never prometheus_client's global one)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        self.messages_in = Counter("bot_messages_in", "Messages handed to the pipeline", ["platform"], registry=r)
        self.replies = Counter("bot_replies", "Replies by how they were made", ["mode"], registry=r)
        self.lost = Counter("bot_messages_lost", "Messages dropped because of an error", ["platform"], registry=r)
        self.first_token = Histogram(
            "bot_first_token_seconds", "From a message's arrival to the first token", buckets=_FIRST_TOKEN_BUCKETS, registry=r
        )
        self.reply_seconds = Histogram(
            "bot_reply_seconds", "From a message's arrival to its finished reply", buckets=_REPLY_BUCKETS, registry=r
        )
        self.queue_seconds = Histogram(
            "bot_queue_seconds", "From a message's arrival to its model request being sent", buckets=_QUEUE_BUCKETS, registry=r
        )
        self.openings = Counter("bot_model_breaker_openings", "Times the breaker opened", registry=r)
        self.shed = Counter("bot_messages_shed", "Messages answered without the model after the queue limit", registry=r)
        self.busy = Counter("bot_busy_notices", "Busy lines posted to waiting conversations", registry=r)
        self.model_errors = Counter("bot_model_errors", "Model requests with no usable reply", ["kind"], registry=r)
        self.breaker = Gauge("bot_model_breaker_open", "1 while the model is skipped after a failure", registry=r)
        self.queue = Gauge("bot_model_queue_depth", "Replies waiting for a model slot", registry=r)
        self.check_seconds = Histogram(
            "bot_reply_check_seconds", "Time the output checks spent on one reply", buckets=_CHECK_BUCKETS, registry=r
        )
        self.defects = Counter("bot_reply_defects", "Broken model replies caught before showing", ["kind"], registry=r)
        self.repairs = Counter("bot_reply_repairs", "What was done with a broken reply", ["outcome"], registry=r)
        for kind in ("loop", "symbols", "language", "overrun", "prompt"):
            self.defects.labels(kind)
        for outcome in ("cut", "retried", "offline"):
            self.repairs.labels(outcome)
        self.store_errors = Counter("bot_store_errors", "Store failures that cost a message", registry=r)
        self.store_up = Gauge("bot_store_available", "0 while the store is away", registry=r)
        self.unembedded = Gauge("bot_memory_turns_unembedded", "Turns indexed for recall, not yet embedded (dense recall)",
                                registry=r)
        for platform in ("discord", "qq", "terminal"):  # shown as 0 from the start, so alerts can watch them
            self.messages_in.labels(platform)
            self.lost.labels(platform)
        for mode in ("model", "offline", "fallback", "canned", "reaction"):
            self.replies.labels(mode)
        self.breaker_until = float("-inf")  # time.monotonic() until which the breaker is open
        self.breaker.set_function(lambda: float(time.monotonic() < self.breaker_until))
        self.queue.set_function(lambda: 0.0)
        self.store_up.set_function(lambda: 1.0)
        self.unembedded.set_function(lambda: 0.0)


WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
_on: Metrics | None = None  # built by the first `serve`; kept for the process (counters never go back)


@dataclass
class Exporter:
    """The HTTP server behind /metrics; `close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop listening (the metrics keep counting for a later exporter)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2.0)
        if _on is not None:
            _on.queue.set_function(lambda: 0.0)
            _on.store_up.set_function(lambda: 1.0)
            _on.unembedded.set_function(lambda: 0.0)


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds are noise, and a URL may carry anything."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _guarded(app: WSGIApp, token: str) -> WSGIApp:
    """`app` behind `Authorization: Bearer <token>` (no check when there is no token: localhost only)."""
    if not token:
        return app
    want = f"Bearer {token}".encode()

    def check(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, want):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
        return [b"a bearer token is required\n"]

    return check


def serve(cfg: MetricsConfig, slots: Slots | None = None, store_available: Callable[[], bool] | None = None,
          unembedded: Callable[[], int] | None = None) -> Exporter:
    """Start counting and serve /metrics on [metrics] host:port; raise OSError naming the address."""
    global _on
    _on = _on or Metrics()
    on = _on
    if slots is not None:
        on.queue.set_function(lambda: float(slots.queued))
    if unembedded is not None:
        on.unembedded.set_function(lambda: float(unembedded()))
    if store_available is not None:
        on.store_up.set_function(lambda: float(store_available()))
    token = cfg.token.get_secret_value()
    if problem := exposed_without_token("metrics", cfg.host, cfg.token, "BOT_METRICS__TOKEN", "it needs a token"):
        raise OSError(f"{problem} and the same bearer token in the scraper")
    try:
        server = make_server(cfg.host, cfg.port, _guarded(make_wsgi_app(on.registry), token), ThreadingWSGIServer,
                             handler_class=_QuietHandler)
    except OSError as exc:
        raise OSError(f"[metrics] cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); set another port") from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics: Prometheus exporter on http://%s:%d/metrics", cfg.host, cfg.port)
    return Exporter(server, thread)


def message_in(platform: str) -> None:
    """A message reached the pipeline."""
    if _on is not None:
        _on.messages_in.labels(platform).inc()


def reply(mode: str, seconds: float) -> None:
    """A reply was made in `mode`, `seconds` after its message arrived."""
    if _on is not None:
        _on.replies.labels(mode).inc()
        _on.reply_seconds.observe(max(0.0, seconds))


def first_token(seconds: float) -> None:
    """The model's first token came `seconds` after the message arrived."""
    if _on is not None:
        _on.first_token.observe(max(0.0, seconds))


def queued(seconds: float) -> None:
    """A message's model request was sent `seconds` after the message arrived."""
    if _on is not None:
        _on.queue_seconds.observe(max(0.0, seconds))


def shed() -> None:
    """A message reached the queue limit and was answered without the model."""
    if _on is not None:
        _on.shed.inc()


def busy_notice() -> None:
    """A waiting conversation was told the character is busy."""
    if _on is not None:
        _on.busy.inc()


def model_error(error: BaseException | None, timed_out: str = "") -> None:
    """A model request gave no usable reply: an LLMError, or a timeout ("no first token ..." / "stall ...")."""
    if _on is None:
        return
    if timed_out:
        kind = "first_token_timeout" if timed_out.startswith("no first token") else "stall_timeout"
    else:
        kind = _ERROR_KINDS.get(type(error).__name__, "server")
    _on.model_errors.labels(kind).inc()


def check_cost(seconds: float) -> None:
    """The output checks of one reply took `seconds`."""
    if _on is not None:
        _on.check_seconds.observe(seconds)


def reply_defect(kind: str, outcome: str) -> None:
    """A model reply had a defect of `kind`; `outcome`: cut, retried or offline."""
    if _on is None:
        return
    _on.defects.labels(kind).inc()
    _on.repairs.labels(outcome).inc()


def breaker_opened(seconds: float, counted: bool = True) -> None:
    """The model is skipped for the next `seconds` (`counted`: it was closed until now)."""
    if _on is not None:
        _on.breaker_until = time.monotonic() + seconds
        if counted:
            _on.openings.inc()


def breaker_closed() -> None:
    """The model answered again."""
    if _on is not None:
        _on.breaker_until = float("-inf")


def message_lost(platform: str, error: BaseException | None = None) -> None:
    """A message was dropped because of an error (a store failure is counted as one too)."""
    if _on is None:
        return
    _on.lost.labels(platform).inc()
    if isinstance(error, StoreError):
        _on.store_errors.inc()
