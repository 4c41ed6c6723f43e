"""A conversation page shows, under each recent reply, what its prompt held and the tokens per section."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from core.messages import Incoming
from memory.turns import CONTEXTS_KEPT, SessionKey
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.web.support import HOSTILE_NAME, TOKEN, Page, running_page, web_section

KEY = SessionKey("horo", "qq", "group", "4242")


@pytest.fixture
async def page(make_settings: MakeSettings, llm: FakeOpenAI) -> AsyncIterator[Page]:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, web=web_section(),
                             knowledge={"enabled": True, "mode": "bm25"}, bot={"rate_limit_per_minute": 100_000})
    async with running_page(settings) as started:
        yield started


async def say(page: Page, llm: FakeOpenAI, text: str, reply: str, n: int) -> None:
    llm.push(Script(text=reply))
    await page.app.chain.handle(Incoming("qq", "4242", "777", HOSTILE_NAME, f"赫萝 {text}", message_id=f"w{n}",
                                         mentions_bot=True))


async def test_each_recent_reply_shows_its_lore_and_tokens_per_section(page: Page, llm: FakeOpenAI) -> None:
    await say(page, llm, "今天天气如何", "呵呵，天气正好，适合晒尾巴。", 1)
    await say(page, llm, "汝的故乡约伊兹在哪里", "约伊兹在遥远的北方，咱很想念那里。", 2)
    async with httpx.AsyncClient(base_url=page.base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        r = await client.get(f"/conversation?{urlencode({'key': str(KEY)})}")
    assert r.status_code == 200
    blocks = re.findall(r'<details class="why">.*?</details>', r.text, re.S)
    assert len(blocks) == 2  # one under each reply
    first, second = blocks
    assert "约伊兹" not in first.split("</p>", 1)[1]  # the first prompt held no lore about it
    assert "<h4>lore</h4>" in second and "约伊兹" in second.split("<h4>lore</h4>")[1]
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>", second))
    assert {"system prompt and card", "recent turns", "lore", "the message", "total"} <= set(rows)
    assert int(rows["total"]) == sum(int(v) for k, v in rows.items() if k != "total")
    assert int(rows["system prompt and card"]) > 100 and int(rows["lore"]) > 0
    # who it answered is a hostile name from QQ: shown as text
    assert HOSTILE_NAME not in r.text and "to &lt;img src=x onerror=alert(1)&gt;:" in second
    # the /why command reads the same record
    said = await page.app.store.last_context(KEY)
    assert said is not None and dict(said.tokens)["lore"] == int(rows["lore"])


async def test_only_the_last_replies_keep_their_why(page: Page, llm: FakeOpenAI) -> None:
    for n in range(CONTEXTS_KEPT + 2):
        await say(page, llm, f"第{n}句话，随便聊聊", f"嗯，第{n}句咱也听着呢。", n)
    async with httpx.AsyncClient(base_url=page.base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        r = await client.get(f"/conversation?{urlencode({'key': str(KEY)})}")
    assert r.text.count('<details class="why">') == CONTEXTS_KEPT
    assert r.text.count('<div class="line assistant">') == CONTEXTS_KEPT + 2
