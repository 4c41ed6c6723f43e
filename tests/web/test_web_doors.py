"""The page's doors, tried as an attacker would: a walk over every registered route without a credential,
odd spellings of paths, a WebSocket handshake, every state-changing POST sent cross-site with a valid
cookie, and one browser reading another's chat."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bot.web.auth import OPEN_PATHS, SESSION_COOKIE, VISITOR_COOKIE
from core.messages import Incoming
from tests.support.openai_server import FakeOpenAI, Script
from tests.web.support import TOKEN, Page, logged_in

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
FORGED = ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Cookie": f"{SESSION_COOKIE}=forged"})
ODD_PATHS = ("/chat/", "//chat", "/CHAT", "/chat;x", "/static/../conversations", "/static/%2e%2e/conversations",
             "/static/style.css/../chat.js", "/static/chat.js", "/no-such-page", "/api/no-such", "/%00", "/static/")


def paths_of(route: BaseRoute) -> list[str]:
    """Every path a route answers: a Mount of static files, each of its files."""
    if isinstance(route, Mount):
        assert isinstance(route.app, StaticFiles), f"a mount the walk does not know how to list: {route.path}"
        folder = route.app.directory
        assert folder is not None
        return [f"{route.path}/{p.relative_to(folder)}" for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    assert isinstance(route, Route | WebSocketRoute), f"a route the walk does not know: {route!r}"
    return [route.path]


async def raw_status(page: Page, method: str, target: str, headers: dict[str, str]) -> int:
    """The status for a request line sent as written (no client normalizes the path first)."""
    parts = urlsplit(page.base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}Content-Length: 0\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(head.split()[1])


async def test_every_registered_route_refuses_every_method_without_a_credential(page: Page) -> None:
    paths = [p for route in page.server.asgi.routes for p in paths_of(route)]
    assert {"/chat/send", "/characters/import", "/knowledge/ingest", "/static/chat.js"} <= set(paths)
    opened = []
    async with httpx.AsyncClient(base_url=page.base) as client:
        for path in paths:
            for method in METHODS:
                for headers in FORGED:
                    r = await client.request(method, path, headers=headers)
                    if path in OPEN_PATHS and method in ("GET", "HEAD") and r.status_code == 200:
                        opened.append(path)
                        continue
                    assert r.status_code in (401, 429), (method, path, headers, r.status_code)
                    if r.status_code == 401 and method != "HEAD":
                        assert "login link" in r.text and "www-authenticate" in r.headers
                        if path.startswith("/api/"):
                            assert r.headers["content-type"].startswith("application/json")
    assert set(opened) == {"/static/style.css"}  # the login page's stylesheet, and nothing with data
    for path in ODD_PATHS:
        for method in ("GET", "POST"):
            assert await raw_status(page, method, path, {}) in (400, 401, 404), (method, path)
            assert await raw_status(page, method, path, {"Cookie": f"{SESSION_COOKIE}=forged"}) in (400, 401, 404)


async def test_a_websocket_route_needs_the_session_and_this_pages_origin(page: Page) -> None:
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("in")
        await ws.close()

    # a route added later (a streaming console, say) sits behind the same guard
    page.server.asgi.router.routes.append(WebSocketRoute("/ws-probe", echo))
    url = page.base.replace("http://", "ws://") + "/ws-probe"
    host = urlsplit(page.base).netloc
    async with logged_in(page) as browser:
        sid = browser.cookies[SESSION_COOKIE]
    for headers, origin in (({}, None), ({"Cookie": f"{SESSION_COOKIE}=forged"}, f"http://{host}"),
                            ({"Cookie": f"{SESSION_COOKIE}={sid}"}, "http://evil.example"),
                            ({"Cookie": f"{SESSION_COOKIE}={sid}"}, None)):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers, origin=origin):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403, (headers, origin)
    async with connect(url, additional_headers={"Cookie": f"{SESSION_COOKIE}={sid}"},
                       origin=f"http://{host}") as ws:  # type: ignore[arg-type]
        assert await ws.recv() == "in"
    async with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert await ws.recv() == "in"


async def test_every_state_changing_post_from_another_site_is_refused_with_a_valid_cookie(page: Page) -> None:
    posts = [r.path for r in page.server.asgi.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    assert {"/characters/import", "/character/save", "/knowledge/ingest", "/conversation/forget",
            "/characters/switch", "/chat/send", "/logout"} <= set(posts)
    forms = {"/character/save": {"id": "horo", "name": "Evil"}, "/characters/switch":
             {"platform": "qq", "scope": "group", "id": "1", "persona": "yexiu"}, "/knowledge/ingest": {"id": "horo"}}
    async with logged_in(page) as browser:
        for path in posts:
            for origin in ("http://evil.example", "null", f"{page.base}.evil.example", page.base.replace("http", "https") + "1"):
                r = await browser.post(path, data=forms.get(path, {"x": "1"}), headers={"Origin": origin})
                assert r.status_code == 403, (path, origin, r.status_code)
            del browser.headers["Origin"]
            r = await browser.post(path, data=forms.get(path, {"x": "1"}), headers={"Referer": f"{page.base}/characters"})
            assert r.status_code == 403, path  # a Referer alone is no Origin
            browser.headers["Origin"] = page.base
        assert (await browser.get("/chat")).status_code == 200  # the refused /logout closed nothing
    assert page.app.personas.get("horo").name == "赫萝"
    assert not page.app.settings.personas.import_dir.exists() or not any(page.app.settings.personas.import_dir.iterdir())
    assert "persona" not in await page.app.store.settings(Incoming("qq", "1", "1", "", "").conversation)
    async with httpx.AsyncClient(base_url=page.base, headers={"Authorization": f"Bearer {TOKEN}"}) as script:
        assert (await script.get("/api/knowledge")).json() == {}  # no re-ingest was started


async def test_each_browser_sees_only_its_own_chat(page: Page, llm: FakeOpenAI) -> None:
    llm.default = Script(text="嗯。")
    async with logged_in(page) as first, logged_in(page) as second:
        assert first.cookies[VISITOR_COOKIE] != second.cookies[VISITOR_COOKIE]
        r = await first.post("/chat/send", json={"text": "只有我知道的暗号是青梅", "persona": "horo"})
        assert r.status_code == 200 and "嗯。" in r.text
        assert "青梅" in (await first.get("/chat")).text
        assert "青梅" not in (await second.get("/chat")).text
        r = await second.post("/chat/send", json={"text": "/memory"})
        assert "青梅" not in r.text
    async with httpx.AsyncClient(base_url=page.base, headers={"Authorization": f"Bearer {TOKEN}"}) as script:
        assert "青梅" not in (await script.get("/chat")).text  # a script is a visitor of its own
