"""A OneBot v11 implementation's side of reverse WebSocket (as NapCat or Lagrange speak it), for tests.

It connects to the bot, pushes message events as JSON, and answers every action the bot calls with a
OneBot response; the actions it received are kept in order for the test to inspect.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class OneBotImpl:
    """One connected bot account (X-Self-ID), answering `get_msg` from the messages it has seen."""

    def __init__(self, url: str, self_id: str, token: str, refuse: frozenset[str] = frozenset()):
        self.url = url
        self.self_id = self_id
        self.token = token
        self.refuse = refuse  # actions this implementation answers as failed (e.g. no temporary sessions)
        self.actions: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.messages: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(5000)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, keepalive: bool = True) -> None:
        """Connect with the headers a OneBot implementation sends (`keepalive`: ping, as they do)."""
        headers = {"X-Self-ID": self.self_id, "X-Client-Role": "Universal", "Authorization": f"Bearer {self.token}"}
        self._ws = await connect(self.url, additional_headers=headers, open_timeout=5,
                                 ping_interval=20 if keepalive else None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Disconnect."""
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._ws:
            await self._ws.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            call = json.loads(raw)
            await self._ws.send(json.dumps(self._answer(call), ensure_ascii=False))
            await self.actions.put(call)

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        action, params = call["action"], call.get("params", {})
        data: Any = None
        if action in self.refuse:
            return {"status": "failed", "retcode": 100, "data": None, "message": "not supported", "echo": call.get("echo")}
        if action == "get_login_info":
            data = {"user_id": int(self.self_id), "nickname": "bot"}
        elif action == "get_msg":
            found = self.messages.get(int(params["message_id"]))
            if found is None:
                return {"status": "failed", "retcode": 1404, "data": None, "message": "no such message", "echo": call.get("echo")}
            data = found
        elif action.startswith("send_"):
            mid = next(self._ids)
            kind = params.get("message_type") or ("group" if "group_id" in params else "private")
            self.messages[mid] = {
                "time": int(time.time()), "message_type": kind, "message_id": mid, "real_id": mid,
                "sender": {"user_id": int(self.self_id), "nickname": "bot"}, "message": params.get("message", []),
            }
            data = {"message_id": mid}
        return {"status": "ok", "retcode": 0, "data": data, "echo": call.get("echo")}

    async def push(self, event: dict[str, Any]) -> None:
        """Send one event to the bot."""
        assert self._ws is not None
        await self._ws.send(json.dumps(event, ensure_ascii=False))

    async def next_action(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """The params of the next action called `name` (earlier other actions are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                call = await self.actions.get()
                if call["action"] == name:
                    return dict(call.get("params", {}))

    def group_message(
        self, segments: list[dict[str, Any]], *, group_id: int, user_id: int, message_id: int, card: str = "", role: str = "member"
    ) -> dict[str, Any]:
        """A group message event as OneBot v11 pushes it."""
        return {
            "time": int(time.time()), "self_id": int(self.self_id), "post_type": "message", "message_type": "group",
            "sub_type": "normal", "message_id": message_id, "group_id": group_id, "user_id": user_id,
            "anonymous": None, "message": segments, "raw_message": "", "font": 0,
            "sender": {"user_id": user_id, "nickname": f"n{user_id}", "card": card, "role": role},
        }

    def private_message(self, text: str, *, user_id: int, message_id: int) -> dict[str, Any]:
        """A private (friend) message event."""
        return {
            "time": int(time.time()), "self_id": int(self.self_id), "post_type": "message", "message_type": "private",
            "sub_type": "friend", "message_id": message_id, "user_id": user_id,
            "message": [{"type": "text", "data": {"text": text}}], "raw_message": text, "font": 0,
            "sender": {"user_id": user_id, "nickname": f"n{user_id}"},
        }


def text(value: str) -> dict[str, Any]:
    """A text segment."""
    return {"type": "text", "data": {"text": value}}
