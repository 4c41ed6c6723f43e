"""Every page shows what users, the model, cards and log lines supply as text: the pages are parsed as a
browser would (html.parser), and no payload may become a tag, an attribute or a script."""

from __future__ import annotations

import json
import logging
from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx

from core.messages import Incoming
from tests.support.openai_server import FakeOpenAI, Script
from tests.web.support import Page

BREAKOUT = '"><img src=x onerror=alert(1)>'
SCRIPT = "</textarea><script>alert(2)</script>"
PAYLOAD = f"{BREAKOUT}{SCRIPT}"


class Parsed(HTMLParser):
    """The tags, attributes and text a browser would build from a page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def markup_problems(self) -> list[str]:
        """What of the page could run or load something it should not."""
        bad = []
        for tag, attrs in self.tags:
            if tag in ("img", "svg", "iframe", "object", "embed", "base", "meta") and attrs.get("charset") is None \
                    and attrs.get("name") != "viewport":
                bad.append(tag)
            if tag == "script" and not str(attrs.get("src", "")).startswith("/static/"):
                bad.append("inline script")
            bad += [f"{tag} {k}" for k, v in attrs.items() if k.startswith("on") or "javascript:" in str(v).lower()]
        return bad

    def shows(self, value: str) -> bool:
        """Whether `value` is on the page as text (in an element's text or a form field's value)."""
        values = [str(v) for _, attrs in self.tags for v in attrs.values() if v]
        return any(value in chunk for chunk in ["".join(self.text), *values])


async def test_every_page_shows_hostile_names_messages_cards_and_log_lines_as_text(
    page: Page, client: httpx.AsyncClient, llm: FakeOpenAI, logged: None
) -> None:
    card = {"spec": "chara_card_v2", "data": {"name": f"Mallory {PAYLOAD}", "description": PAYLOAD,
                                               "first_mes": PAYLOAD, "tags": [PAYLOAD], "creator_notes": PAYLOAD}}
    r = await client.post("/characters/import", files={"card": ("m.json", json.dumps(card).encode(), "application/json")})
    assert r.status_code == 303
    imported = r.headers["location"].split("id=")[1]
    llm.push(Script(text=f"{SCRIPT} 嗯。"))  # the model, too, may write markup
    reply = await page.app.chain.handle(Incoming("qq", "12345", "777", BREAKOUT, f"赫萝 {SCRIPT}", message_id="q1",
                                                 mentions_bot=True))
    assert reply is not None
    llm.push(Script(text=f"{BREAKOUT} 好。"))
    async with client.stream("POST", "/chat/send", json={"text": PAYLOAD, "persona": "horo"}) as streamed:
        assert streamed.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(x) async for x in streamed.aiter_lines() if x]
    assert lines[-1]["reply"].startswith(BREAKOUT)  # JSON carries it as a string; the page's script sets it as text
    logging.getLogger("bot.probe").warning("a log line with %s", PAYLOAD)
    switched = await client.post("/characters/switch", data={"platform": "qq", "scope": "group", "id": BREAKOUT,
                                                              "persona": "horo"})
    assert switched.status_code == 200
    shown = {
        "/chat": (await client.get("/chat")).text,
        "/conversations": (await client.get("/conversations", params={"q": PAYLOAD})).text,
        "/conversation": (await client.get(f"/conversation?{urlencode({'key': 'horo:qq:group:12345'})}")).text,
        "/characters": (await client.get("/characters")).text,
        "/character": (await client.get(f"/character?{urlencode({'id': imported})}")).text,
        "/knowledge": (await client.get("/knowledge")).text,
        "/logs": (await client.get("/logs", params={"level": "warning", "q": "log line"})).text,
        "/logs?q": (await client.get("/logs", params={"q": PAYLOAD})).text,
        "/characters/switch": switched.text,
        "bad edit": (await client.post("/character/save", data={"id": imported, "name": "", "first_mes": PAYLOAD})).text,
    }
    expect = {"/chat": PAYLOAD, "/conversations": PAYLOAD, "/conversation": BREAKOUT, "/characters": PAYLOAD,
              "/character": PAYLOAD, "/knowledge": PAYLOAD, "/logs": PAYLOAD, "/logs?q": PAYLOAD,
              "/characters/switch": BREAKOUT, "bad edit": PAYLOAD}
    for name, html in shown.items():
        parsed = Parsed(html)
        assert parsed.markup_problems() == [], name
        assert parsed.shows(expect[name]), name  # there, whole, as text
    assert Parsed(shown["/conversation"]).shows(SCRIPT)  # the member's message and the model's reply
    for path in ("/api/status", "/api/knowledge"):
        r = await client.get(path)
        assert r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"
        json.loads(r.text)
