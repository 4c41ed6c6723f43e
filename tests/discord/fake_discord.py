"""A real local Discord: the REST routes and the gateway WebSocket the front-end uses, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import WSMsgType, web

TOKEN = "fake-bot-token"
BOT_ID = 900_000_000_000_000_001
APP_ID = 900_000_000_000_000_002
GUILD_ID = 900_000_000_000_000_010
CHANNEL_ID = 900_000_000_000_000_020
THREAD_ID = 900_000_000_000_000_021
DM_ID = 900_000_000_000_000_030
ALICE = 900_000_000_000_000_100
OTHER_BOT = 900_000_000_000_000_101
NOW = "2026-01-01T00:00:00.000000+00:00"

MANAGE_GUILD = 1 << 5


def user(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    """A user object as the API sends it."""
    return {"id": str(uid), "username": name, "global_name": name, "discriminator": "0", "avatar": None, "bot": bot}


BOT_USER = user(BOT_ID, "rpbot", bot=True)


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON with the bare content type discord.py compares against (no charset)."""
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


@dataclass
class Sent:
    """One request the bot made: method, path, JSON body (or multipart payload_json) and files."""

    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    query: dict[str, str] = field(default_factory=dict)


class FakeDiscord:
    """Speaks enough of Discord's API v10 and gateway for one bot in one guild."""

    def __init__(self) -> None:
        self.requests: list[Sent] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.identify: dict[str, Any] | None = None
        self.refuse_intents = False
        self.permissions_ok = True  # False: webhook creation is Forbidden
        self.fetch_delay = 0.0  # seconds GET ./messages/ID takes (quoted messages discord.py must fetch)
        self.sockets: list[web.WebSocketResponse] = []
        # snowflakes carry their time: a message made now says it was sent now (discord.py's created_at)
        self._ids = itertools.count(discord.utils.time_snowflake(datetime.datetime.now(datetime.UTC)))
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def next_id(self) -> int:
        """A fresh snowflake."""
        return next(self._ids)

    async def start(self) -> None:
        """Listen on a free port."""
        app = web.Application()
        app.router.add_get("/gateway", self._ws)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        """Stop serving."""
        for ws in list(self.sockets):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    # ---------- what the tests look at ----------

    def sent(self, method: str = "POST", contains: str = "/messages") -> list[Sent]:
        """Requests of one method whose path contains `contains`."""
        return [r for r in self.requests if r.method == method and contains in r.path]

    async def wait_for(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll until check() is truthy; fail with the recorded requests otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = check()
            if value:
                return value
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; requests: {[(r.method, r.path) for r in self.requests]}")

    async def wait_for_async(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Like wait_for, for an async check."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; requests: {[(r.method, r.path) for r in self.requests]}")

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway dispatch to every connected client."""
        frame = json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data})
        for ws in self.sockets:
            await ws.send_str(frame)

    # ---------- payload builders ----------

    def message(
        self,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        channel_id: int = CHANNEL_ID,
        guild: bool = True,
        mentions: list[dict[str, Any]] = (),  # type: ignore[assignment]
        reply_to: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] = (),  # type: ignore[assignment]
        webhook_id: int | None = None,
        flags: int = 0,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload (stored, so the bot can fetch it later)."""
        author = author or user(ALICE, "alice")
        data: dict[str, Any] = {
            "id": str(self.next_id()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": NOW,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": "@everyone" in content,
            "mentions": list(mentions),
            "mention_roles": [],
            "attachments": list(attachments),
            "embeds": [],
            "pinned": False,
            "type": 19 if reply_to else 0,
            "flags": flags,
        }
        if guild:
            data["guild_id"] = str(GUILD_ID)
            data["member"] = {"roles": [], "joined_at": NOW, "nick": None, "deaf": False, "mute": False, "flags": 0}
        if reply_to is not None:
            data["message_reference"] = {"message_id": reply_to["id"], "channel_id": reply_to["channel_id"]}
            data["referenced_message"] = reply_to
        if webhook_id is not None:
            data["webhook_id"] = str(webhook_id)
        self.messages[int(data["id"])] = data
        return data

    def interaction(
        self, name: str, options: list[dict[str, Any]] = (), *, permissions: int = 0, guild: bool = True  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for a slash command from alice."""
        data: dict[str, Any] = {
            "id": str(self.next_id()),
            "application_id": str(APP_ID),
            "type": 2,
            "token": f"itoken{self.next_id()}",
            "version": 1,
            "locale": "en-US",
            "app_permissions": str((1 << 40) - 1),
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {"0": str(GUILD_ID)} if guild else {"1": str(ALICE)},
            "context": 0 if guild else 1,
            "data": {"id": str(self.next_id()), "name": name, "type": 1, "options": list(options)},
        }
        if guild:
            data.update(
                guild_id=str(GUILD_ID),
                channel_id=str(CHANNEL_ID),
                channel={"id": str(CHANNEL_ID), "type": 0, "guild_id": str(GUILD_ID), "name": "general"},
                guild_locale="en-US",
                member={"user": user(ALICE, "alice"), "roles": [], "joined_at": NOW, "permissions": str(permissions),
                        "deaf": False, "mute": False, "flags": 0},
            )
        else:
            data.update(channel_id=str(DM_ID), channel={"id": str(DM_ID), "type": 1}, user=user(ALICE, "alice"))
        return data

    def guild(self) -> dict[str, Any]:
        """The GUILD_CREATE payload: one text channel with one thread."""
        return {
            "id": str(GUILD_ID),
            "name": "test guild",
            "owner_id": str(ALICE),
            "icon": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [{"id": str(GUILD_ID), "name": "@everyone", "permissions": str((1 << 40) - 1), "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "channels": [{"id": str(CHANNEL_ID), "type": 0, "name": "general", "position": 0,
                          "permission_overwrites": [], "guild_id": str(GUILD_ID)}],
            "threads": [{"id": str(THREAD_ID), "type": 11, "name": "a thread", "parent_id": str(CHANNEL_ID),
                         "guild_id": str(GUILD_ID), "owner_id": str(ALICE), "message_count": 0, "member_count": 1,
                         "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                             "archive_timestamp": NOW, "locked": False}}],
            "members": [{"user": BOT_USER, "roles": [], "joined_at": NOW, "deaf": False, "mute": False, "flags": 0}],
            "member_count": 2,
            "voice_states": [],
            "presences": [],
            "large": False,
            "unavailable": False,
        }

    # ---------- the gateway ----------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 45000}})
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(frame.data)
                if msg["op"] == 1:
                    await ws.send_json({"op": 11})
                elif msg["op"] == 2:
                    await self._identified(ws, msg["d"])
        finally:
            self.sockets.remove(ws)
        return ws

    async def _identified(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identify = data
        if self.refuse_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        ready = {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": "session",
            "resume_gateway_url": self.gateway,
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "shard": data.get("shard", [0, 1]),
        }
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": next(self._seq), "d": ready}))
        await ws.send_str(json.dumps({"op": 0, "t": "GUILD_CREATE", "s": next(self._seq), "d": self.guild()}))

    # ---------- REST ----------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body: dict[str, Any] = {}
        files: list[tuple[str, bytes]] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    body = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files.append((part.filename or "", bytes(await part.read())))  # type: ignore[union-attr]
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else {}
        self.requests.append(Sent(request.method, path, body, files, dict(request.query)))
        if request.headers.get("Authorization") != f"Bot {TOKEN}" and not path.startswith(("/webhooks/", "/interactions/")):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return await self._route(request.method, path.strip("/").split("/"), body, files, request)

    async def _route(
        self, method: str, parts: list[str], body: dict[str, Any], files: list[tuple[str, bytes]], request: web.Request
    ) -> web.StreamResponse:
        match method, parts:
            case "GET", ["users", "@me"]:
                return _json(BOT_USER)
            case "GET", ["oauth2", "applications", "@me"]:
                return _json({
                    "id": str(APP_ID), "name": "rpbot", "description": "", "icon": None, "bot_public": True,
                    "bot_require_code_grant": False, "owner": user(ALICE, "alice"), "verify_key": "k", "flags": 0,
                })
            case "GET", ["gateway", "bot"]:
                return _json({"url": self.gateway, "shards": 1, "session_start_limit": {
                    "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
            case "PUT", ["applications", _, *rest]:
                return _json([
                    {**c, "id": str(self.next_id()), "application_id": str(APP_ID), "version": "1",
                     **({"guild_id": rest[1]} if rest[0] == "guilds" else {})}
                    for c in body  # type: ignore[union-attr]
                ])
            case "POST", ["channels", cid, "typing"]:
                return web.Response(status=204)
            case "PUT", ["channels", _, "messages", mid, "reactions", _, "@me"]:
                if int(mid) not in self.messages:
                    return _json({"message": "Unknown Message", "code": 10008}, status=404)
                return web.Response(status=204)
            case "POST", ["channels", cid, "messages"]:
                return _json(self._created(int(cid), body, files, BOT_USER))
            case "PATCH", ["channels", cid, "messages", mid]:
                stored = self.messages.get(int(mid), {})
                stored.update(content=body.get("content", stored.get("content")), edited_timestamp=NOW)
                return _json(stored)
            case "DELETE", ["channels", _, "messages", mid]:
                self.messages.pop(int(mid), None)
                return web.Response(status=204)
            case "GET", ["channels", _, "messages", mid]:
                await asyncio.sleep(self.fetch_delay)  # a slow REST API: later gateway events overtake this one
                if int(mid) in self.messages:
                    return _json(self.messages[int(mid)])
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            case "GET", ["channels", cid, "webhooks"]:
                return _json([w for w in self.webhooks.values() if w["channel_id"] == cid])
            case "POST", ["channels", cid, "webhooks"]:
                if not self.permissions_ok:
                    return _json({"message": "Missing Permissions", "code": 50013}, status=403)
                wid = self.next_id()
                hook = {"id": str(wid), "type": 1, "channel_id": cid, "guild_id": str(GUILD_ID), "name": body["name"],
                        "token": f"wtoken{wid}", "user": BOT_USER, "application_id": str(APP_ID), "avatar": None}
                self.webhooks[wid] = hook
                return _json(hook)
            case "POST", ["interactions", iid, _, "callback"]:
                flags = (body.get("data") or {}).get("flags", 0)
                return _json({"interaction": {"id": iid, "type": 2, "response_message_ephemeral": bool(flags & 64),
                                              "response_message_loading": body.get("type") == 5},
                              "resource": {"type": body.get("type", 4)}})
            case "POST", ["webhooks", wid, _]:
                if int(wid) == APP_ID:  # an interaction follow-up
                    return _json(self._created(CHANNEL_ID, body, files, BOT_USER))
                hook = self.webhooks[int(wid)]
                cid = int(request.query.get("thread_id", hook["channel_id"]))
                author = user(int(wid), body.get("username") or hook["name"], bot=True)
                return _json(self._created(cid, body, files, author, webhook_id=int(wid)))
        return _json({"message": f"no route {method} {'/'.join(parts)}", "code": 0}, status=404)

    def _created(
        self, cid: int, body: dict[str, Any], files: list[tuple[str, bytes]], author: dict[str, Any],
        webhook_id: int | None = None,
    ) -> dict[str, Any]:
        data = self.message(body.get("content") or "", author=author, channel_id=cid, guild=cid != DM_ID,
                            webhook_id=webhook_id, flags=body.get("flags", 0))
        data["attachments"] = [
            {"id": str(self.next_id()), "filename": name, "size": len(blob), "url": f"http://x/{name}",
             "proxy_url": f"http://x/{name}", "content_type": "audio/ogg"}
            for name, blob in files
        ]
        return data
