"""The OneBot listener's door: every request under /onebot/ proves the access token before nonebot sees it.

nonebot-adapter-onebot checks the token on its WebSocket routes only, and only after X-Self-ID (a
duplicate is refused first); its reverse-HTTP routes (POST /onebot/v11/, /onebot/v11/http) check
nothing but `onebot_secret`'s signature. With a token and no secret, anyone's POST was an event, and
a POST with a new X-Self-ID registered a bot that locked the real WebSocket of that account out.
This ASGI middleware stands in front of every route under the prefix instead, WebSocket and HTTP alike.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/onebot"
NOTE_EVERY = 60.0  # seconds between two log lines about refusals: a flood of forgeries is not a flood of logs


def bearer(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header ("Token" too, as the adapter reads it)."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "token") else ""


class OneBotGuard:
    """ASGI middleware: requests under `prefix` carry `Authorization: Bearer <token>`, or are refused.

    With a `secret` (OneBot's HTTP-POST signing key), a POST that carries X-Signature may pass
    without the header: the adapter then checks that signature itself (HMAC-SHA1 of the body).
    """

    def __init__(self, app: ASGIApp, token: str, secret: str = "", prefix: str = PREFIX,
                 clock: Callable[[], float] = time.monotonic):
        if not token:
            raise ValueError("OneBotGuard needs an access token")
        self.app = app
        self._token = token.encode()
        self._secret = bool(secret)
        self._prefix = prefix
        self._clock = clock
        self._noted = float("-inf")
        self._unnoted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a proven request on; answer any other under the prefix with 401/403 itself."""
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(self._prefix):
            await self.app(scope, receive, send)
            return
        status = self.verdict(scope)
        if status is None:
            await self.app(scope, receive, send)
            return
        self._note(scope, status)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # the server answers the handshake 403
            return
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        body = b"missing access token" if status == 401 else b"wrong access token"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _note(self, scope: Scope, status: int) -> None:
        """One warning per NOTE_EVERY seconds, counting the refusals in between; the path only (a query may hold a token)."""
        now = self._clock()
        if now - self._noted < NOTE_EVERY:
            self._unnoted += 1
            return
        more = f"; {self._unnoted} more since the last note" if self._unnoted else ""
        self._noted, self._unnoted = now, 0
        client = (scope.get("client") or ("?", 0))[0]
        log.warning("OneBot: %s %s from %s refused (%d)%s", scope["type"], scope["path"], client, status, more)

    def verdict(self, scope: Scope) -> int | None:
        """None when the request proves the token; else 401 (no credential) or 403 (a wrong one)."""
        headers = dict(scope.get("headers") or ())
        given = bearer(headers.get(b"authorization", b"").decode("latin-1")).encode("latin-1")
        if given and hmac.compare_digest(given, self._token):
            return None
        if self._secret and scope["type"] == "http" and headers.get(b"x-signature"):
            return None
        return 403 if given or b"authorization" in headers else 401


def guard_nonebot() -> bool:
    """Put a OneBotGuard in front of nonebot's server when the OneBot adapter has an access token.

    Call it after nonebot.init and before the server starts; False when there is nothing to guard.
    """
    import nonebot
    from nonebot.drivers import ASGIMixin

    try:
        from nonebot.adapters.onebot.v11.config import Config
    except ImportError:  # a host project without the OneBot adapter has no OneBot routes
        return False

    cfg = nonebot.get_plugin_config(Config)
    driver = nonebot.get_driver()
    if not cfg.onebot_access_token or not isinstance(driver, ASGIMixin):
        return False
    app = driver.server_app
    if not hasattr(app, "add_middleware"):  # a driver other than FastAPI: the adapter's own checks only
        log.warning("OneBot: the access token guards only the WebSocket routes with this driver")
        return False
    try:
        app.add_middleware(OneBotGuard, token=cfg.onebot_access_token, secret=cfg.onebot_secret or "")
    except RuntimeError as exc:  # the server already runs (a plugin loaded late)
        log.warning("OneBot: the access token guards only the WebSocket routes: %s", exc)
        return False
    return True
