"""Who may use the page: the login link, session cookies, Bearer tokens, and the headers every answer carries.

One ASGI middleware in front of every route. The login entry (`/`) and the stylesheet it uses are
open; every other path, WebSockets included, needs a session cookie (set by the login link) or
`Authorization: Bearer TOKEN`. A state change (POST, a WebSocket) from a browser must also come from
this page's own origin.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import URL, Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "rp_session"
VISITOR_COOKIE = "rp_visitor"
OPEN_PATHS = ("/", "/static/style.css")  # the login page and its stylesheet: they hold no data
FAILURES_ALLOWED = 5  # wrong tokens per address within FAILURE_WINDOW before every try is refused
FAILURE_WINDOW = 60.0
MAX_SESSIONS = 1000  # the oldest login is forgotten past this many
HEADERS = {
    # no inline script or style anywhere: a name or message that slips through escaping still cannot run
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # no Referer leaves for other sites (nor the login link's token); "no-referrer" would make the
    # browser send "Origin: null" with this page's own forms, and the origin check refuse them
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Logins:
    """The token, the sessions it opened, and the recent failures per client address."""

    def __init__(self, token: str, clock: Callable[[], float] = time.monotonic):
        self.token = token
        self.clock = clock
        self._sessions: OrderedDict[str, None] = OrderedDict()
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, client: str) -> bool:
        """Too many wrong tokens from this address lately."""
        recent = self._failures.get(client)
        if not recent:
            return False
        while recent and recent[0] <= self.clock() - FAILURE_WINDOW:
            recent.popleft()
        if not recent:
            del self._failures[client]
        return len(recent) >= FAILURES_ALLOWED

    def check(self, client: str, given: str) -> bool:
        """Is `given` the token (constant time)? A wrong one counts against the address."""
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return True
        if len(self._failures) > 10_000:  # a flood of addresses cannot grow this without bound
            self._failures.clear()
        self._failures.setdefault(client, deque()).append(self.clock())
        return False

    def open(self) -> str:
        """A new session id for a cookie."""
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = None
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def valid(self, sid: str) -> bool:
        """Is this a session this process opened?"""
        return bool(sid) and any(hmac.compare_digest(sid, s) for s in self._sessions)

    def close(self, sid: str) -> None:
        """Forget a session (log out)."""
        self._sessions.pop(sid, None)


def same_origin(headers: Headers) -> bool:
    """Does the request's Origin name this very host (any scheme: a TLS proxy may stand in front)?"""
    origin = headers.get("origin", "")
    host = headers.get("host", "")
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host


class Guard:
    """The middleware: security headers on every answer; login; credentials; POST origin."""

    def __init__(self, app: ASGIApp, logins: Logins, secure_cookie: bool = False):
        self.app = app
        self.logins = logins
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self._refusal(HTTPConnection(scope), "WEBSOCKET") is not None:
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets a 403
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in HEADERS]
                message["headers"] = raw + [(k.encode(), v.encode()) for k, v in HEADERS.items()]
            await send(message)

        request = Request(scope)
        refusal = self._refusal(request, request.method)
        if refusal is not None:
            await refusal(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    def _refusal(self, request: HTTPConnection, method: str) -> Response | None:
        """The answer that stops this request here, or None to let it through."""
        client = request.client.host if request.client else ""
        path = request.url.path
        if path == "/" and "token" in request.query_params and method != "WEBSOCKET":
            return self._login(request, client)
        if path in OPEN_PATHS and method in ("GET", "HEAD"):
            return None
        bearer = request.headers.get("authorization", "")
        if bearer:
            if self.logins.blocked(client):
                return PlainTextResponse("too many wrong tokens; wait a minute", 429)
            scheme, _, given = bearer.partition(" ")
            if scheme.lower() != "bearer" or not self.logins.check(client, given.strip()):
                return _unauthorized(path)
            return None  # a script: no cookie, so no cross-site request can carry this credential
        if not self.logins.valid(request.cookies.get(SESSION_COOKIE, "")):
            return _unauthorized(path)
        if method not in ("GET", "HEAD") and not same_origin(request.headers):
            return PlainTextResponse("refused: a change must come from this page (Origin does not match)", 403)
        return None

    def _login(self, request: HTTPConnection, client: str) -> Response:
        """The login link: a valid token opens a session and leads to the same page without the token."""
        if self.logins.blocked(client):
            return PlainTextResponse("too many wrong tokens; wait a minute", 429)
        if not self.logins.check(client, request.query_params.get("token", "")):
            return _unauthorized("/")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = URL(path=request.url.path).include_query_params(**dict(rest)) if rest else URL(path=request.url.path)
        response = RedirectResponse(str(target), 303)
        response.set_cookie(SESSION_COOKIE, self.logins.open(), httponly=True, samesite="strict",
                            secure=self.secure_cookie, path="/")
        if not request.cookies.get(VISITOR_COOKIE):  # this browser's own chat: the same one after each login
            response.set_cookie(VISITOR_COOKIE, secrets.token_urlsafe(12), max_age=400 * 86400, httponly=True,
                                samesite="strict", secure=self.secure_cookie, path="/")
        return response


def _unauthorized(path: str) -> Response:
    text = "not logged in: open the login link the bot printed at start (http://HOST:PORT/?token=...)"
    if path.startswith("/api/"):
        return JSONResponse({"error": text}, 401, headers={"www-authenticate": "Bearer"})
    return PlainTextResponse(text, 401, headers={"www-authenticate": "Bearer"})
