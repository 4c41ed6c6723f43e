"""The page over real HTTP: login, status, POST origin, chat stream, escaping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from bot.web.auth import FAILURES_ALLOWED
from core.messages import Incoming
from memory.turns import Fact, FactBook, SessionKey
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.texts import varied_chinese
from tests.web.support import HOSTILE_NAME, HOSTILE_TEXT, TOKEN, Page, running_page, web_section

API_KEY = "sk-very-secret-model-key-123456"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def page(make_settings: MakeSettings, llm: FakeOpenAI) -> AsyncIterator[Page]:
    llm.api_key = API_KEY
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model", "api_key": API_KEY},
                             web=web_section())
    async with running_page(settings) as started:
        yield started


async def login(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/?token={TOKEN}")
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_login_link_sets_a_strict_httponly_cookie_and_drops_the_token(page: Page) -> None:
    async with httpx.AsyncClient(base_url=page.base) as client:
        r = await client.get(f"/?token={TOKEN}")
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("rp_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert TOKEN not in cookie
        r = await client.get("/", follow_redirects=True)
        assert r.status_code == 200 and str(r.url) == f"{page.base}/chat" and TOKEN not in r.text
        assert r.headers["x-frame-options"] == "DENY"
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script src=\"/static/chat.js\"" in r.text and "<script>" not in r.text
    assert page.console.getvalue().count(f"/?token={TOKEN}") == 1  # the login link, printed once


async def test_wrong_tokens_are_rate_limited(page: Page) -> None:
    async with httpx.AsyncClient(base_url=page.base) as client:
        for _ in range(FAILURES_ALLOWED):
            assert (await client.get("/?token=nope")).status_code == 401
        assert (await client.get(f"/?token={TOKEN}")).status_code == 429  # even the right one, for a while
        assert (await client.get("/api/status", headers=BEARER)).status_code == 429


async def test_status_reports_fronts_model_and_memory_and_no_secret(page: Page, llm: FakeOpenAI) -> None:
    await page.app.chain.handle(Incoming("test", "c1", "u1", "Alice", "hello", message_id="m1", is_direct=True))
    async with httpx.AsyncClient(base_url=page.base) as client:
        r = await client.get("/api/status", headers=BEARER)
    assert r.status_code == 200
    data = r.json()
    assert data["platforms"]["web"]["connected"] is True and data["platforms"]["qq"]["enabled"] is False
    assert data["model"]["base_url"] == llm.base_url and data["model"]["breaker"] == "closed"
    assert data["model"]["model"] == "test-model"
    assert data["memory"]["backend"] == "sqlite"
    assert data["memory"]["conversations"] == 1 and data["memory"]["turns"] == 2
    assert API_KEY not in r.text and TOKEN not in r.text


async def test_a_change_needs_this_pages_origin(page: Page) -> None:
    facts = (Fact(1, "likes plums", conversation="dm:u1"), Fact(2, "lives by the sea", conversation="dm:u1"))
    await page.app.store.change_facts("horo", "test", "u1", lambda book: FactBook(facts, book.noted))
    async with httpx.AsyncClient(base_url=page.base) as client:
        await login(client)
        form = {"key": "horo:test:dm:u1", "user": "u1", "fact": "all"}
        host = page.base.removeprefix("http://")
        r = await client.post("/conversation/forget", data=form)
        assert r.status_code == 403  # a browser POST without Origin
        r = await client.post("/conversation/forget", data=form, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        assert len(await page.app.store.facts("horo", "test", "u1")) == 2  # refused: nothing forgotten
        r = await client.post("/conversation/forget", data=form | {"fact": "2"}, headers={"Origin": f"http://{host}"})
        assert r.status_code == 303 and await page.app.store.facts("horo", "test", "u1") == ["likes plums"]
        r = await client.post("/conversation/forget", data=form, headers={"Origin": f"http://{host}"})
        assert r.status_code == 303 and await page.app.store.facts("horo", "test", "u1") == []
        r = await client.get("/conversation/forget")
        assert r.status_code == 405  # no change by GET
    async with httpx.AsyncClient(base_url=page.base) as script:
        r = await script.post("/conversation/forget", data=form, headers=BEARER)
        assert r.status_code == 303  # a script with the token needs no Origin: no browser sends it by itself


async def test_chat_streams_the_reply_and_runs_commands(page: Page, llm: FakeOpenAI) -> None:
    said = varied_chinese(199, 7) + "。"
    llm.push(Script(text=said, chunk_size=3, chunk_delay=0.002))
    async with httpx.AsyncClient(base_url=page.base, headers=BEARER) as client:
        async with client.stream("POST", "/chat/send", json={"text": "你好", "persona": "horo"}) as r:
            assert r.status_code == 200
            lines = [json.loads(x) async for x in r.aiter_lines() if x]
        deltas = [x["delta"] for x in lines if "delta" in x]
        assert len(deltas) > 1 and "".join(deltas) == said
        assert lines[-1]["reply"] == said and lines[-1]["name"] == page.app.personas.get("horo").name
        r = await client.post("/chat/send", json={"text": "/memory"})
        assert "remembers about" in json.loads(r.text.splitlines()[0])["command"]
    turns = await page.app.store.recent(SessionKey("horo", "web", "dm", "script"), 10)
    assert [t.text for t in turns] == ["你好", said]
    assert any(m["content"] and "你好" in str(m["content"]) for m in llm.requests[-1]["messages"])


async def test_hostile_names_and_text_are_shown_as_text(page: Page, llm: FakeOpenAI) -> None:
    llm.push(Script(text="<b>bold?</b> 嗯。"))
    msg = Incoming("qq", "12345", "777", HOSTILE_NAME, f"赫萝 {HOSTILE_TEXT}", message_id="q1", mentions_bot=True)
    reply = await page.app.chain.handle(msg)
    assert reply is not None
    key = SessionKey("horo", "qq", "group", "12345")
    async with httpx.AsyncClient(base_url=page.base, headers=BEARER) as client:
        listing = await client.get("/conversations")
        shown = await client.get(f"/conversation?{urlencode({'key': str(key)})}")
    assert "group:12345" in listing.text
    assert shown.status_code == 200
    for raw in (HOSTILE_NAME, "<script>alert(2)</script>", "<b>bold?</b>"):
        assert raw not in shown.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown.text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in shown.text
