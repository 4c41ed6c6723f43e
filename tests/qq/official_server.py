"""A local stand-in for the official QQ bot API: token endpoint, gateway WebSocket, message endpoints.

It speaks the API's own shapes (getAppAccessToken, GET /gateway/bot, op 10 Hello → op 2 Identify →
READY dispatch, event dispatches, POST /v2/groups|users/{openid}/messages) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

ACCESS_TOKEN = "official-access-token"


class OfficialQQ:
    """Records what the bot sends; `dispatch` pushes an event down the gateway."""

    def __init__(self, app_id: str, secret: str):
        self.app_id = app_id
        self.secret = secret
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.identify: asyncio.Future[dict[str, Any]] | None = None
        self.sent: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seq = 1
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        """QQ_API_BASE for the adapter."""
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        """Serve on 127.0.0.1 in this event loop."""
        self.identify = asyncio.get_running_loop().create_future()
        app = Starlette(routes=[
            Route("/app/getAppAccessToken", self._token, methods=["POST"]),
            Route("/gateway/bot", self._gateway),
            Route("/v2/groups/{openid}/messages", self._message, methods=["POST"]),
            Route("/v2/users/{openid}/messages", self._message, methods=["POST"]),
            WebSocketRoute("/websocket", self._ws),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off"))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Shut the server down."""
        if self._server and self._task:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)

    async def _token(self, request: Request) -> JSONResponse:
        body = await request.json()
        if (body.get("appId"), body.get("clientSecret")) != (self.app_id, self.secret):
            return JSONResponse({"code": 100016, "message": "invalid appid or secret"}, status_code=400)
        return JSONResponse({"access_token": ACCESS_TOKEN, "expires_in": "7200"})

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"QQBot {ACCESS_TOKEN}"

    async def _gateway(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"code": 11241, "message": "wrong token"}, status_code=401)
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return JSONResponse({"url": f"ws://127.0.0.1:{self.port}/websocket", "shards": 1, "session_start_limit": limit})

    async def _message(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"code": 11241, "message": "wrong token"}, status_code=401)
        await self.sent.put((request.url.path, await request.json()))
        return JSONResponse({"id": f"sent-{self.sent.qsize()}", "timestamp": "2026-01-01T00:00:00+08:00"})

    async def _ws(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 45000}})
        identify = await ws.receive_json()
        assert self.identify is not None
        if not self.identify.done():
            self.identify.set_result(identify)
        user = {"id": "bot-user", "username": "bot", "bot": True}
        await self._send(ws, "READY", {"version": 1, "session_id": "session-1", "user": user, "shard": [0, 1]})
        sender = asyncio.create_task(self._forward(ws))
        try:
            await self._drain(ws)  # until the bot disconnects
        except Exception:  # the disconnect itself
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _forward(self, ws: WebSocket) -> None:
        while True:
            event = await self._outbox.get()
            await self._send(ws, event["t"], event["d"], event.get("id"))

    async def _drain(self, ws: WebSocket) -> None:
        """Heartbeats come in; each gets its ACK."""
        while True:
            payload = await ws.receive_json()
            if payload.get("op") == 1:
                await ws.send_json({"op": 11})

    async def _send(self, ws: WebSocket, kind: str, data: dict[str, Any], event_id: str | None = None) -> None:
        self._seq += 1
        await ws.send_json({"op": 0, "s": self._seq, "t": kind, "id": event_id or f"{kind}:{self._seq}", "d": data})

    async def dispatch(self, kind: str, data: dict[str, Any]) -> None:
        """Push one event (GROUP_AT_MESSAGE_CREATE, C2C_MESSAGE_CREATE, ...) to the bot."""
        await self._outbox.put({"t": kind, "d": data})
