"""The knowledge page (sources per character, re-ingest with progress) and the logs page (levels, no secrets)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from memory.knowledge import knowledge_root
from memory.knowledge.index import Layout
from memory.knowledge.ingest import Ingestor
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI
from tests.web.support import TOKEN, Page, running_page, web_section

API_KEY = "sk-logs-page-secret-98765"
FIRST = "第一回 花果山\n" + "花果山上有一块仙石，石中迸出一只石猴，众猴拜他为王，号称美猴王。" * 12 + "\n"
SECOND = "第二回 水帘洞\n" + "美猴王在水帘洞里摆下宴席，众猴吃桃饮酒，好不快活。" * 12 + "\n"
LATER = "第三回 东海\n" + "美猴王独自驾着木筏漂过东海，寻访长生不老的仙人，一路见到青鸾和白鹤。" * 12 + "\n"


@pytest.fixture
async def page(make_settings: MakeSettings, llm: FakeOpenAI) -> AsyncIterator[Page]:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model", "api_key": API_KEY},
                             web=web_section(), knowledge={"enabled": True, "mode": "bm25"})
    async with running_page(settings) as started:
        yield started


@pytest.fixture
def source(page: Page, tmp_path: Path) -> Path:
    """A source file of wukong's, ingested the way `python -m bot ingest` does."""
    path = tmp_path / "src" / "xiyou.txt"
    path.parent.mkdir()
    path.write_text(FIRST + SECOND, encoding="utf-8")
    layout = Layout(knowledge_root(page.app.settings), "wukong")
    Ingestor(layout, ["孙悟空", "美猴王"], 300, 40, progress=False).run([path])
    return path


async def test_a_reingest_reads_the_changed_source_and_the_bot_uses_it(page: Page, client: httpx.AsyncClient,
                                                                      source: Path) -> None:
    shown = await client.get("/knowledge")
    assert shown.status_code == 200 and "<td>xiyou</td>" in shown.text and '<script src="/static/knowledge.js"' in shown.text
    assert "nothing ingested yet" in shown.text  # horo and yexiu have no index
    wukong = page.app.personas.get("wukong")
    assert not (await page.app.knowledge.lookup(wukong, "木筏 东海 青鸾", [], None)).passages
    source.write_text(FIRST + SECOND + LATER, encoding="utf-8")
    r = await client.post("/knowledge/ingest", data={"id": "wukong"})
    assert r.status_code == 303
    said: list[str] = []
    async with asyncio.timeout(60):
        while True:
            job = (await client.get("/api/knowledge")).json()["wukong"]
            said.append(job["said"])
            if job["state"] != "running":
                break
            await asyncio.sleep(0.05)
    assert job["state"] == "done" and "1 changed" in job["message"], job
    assert any(s.startswith("re-ingesting") for s in said)
    found = await page.app.knowledge.lookup(wukong, "木筏 东海 青鸾", [], None)
    assert any("木筏" in p.text for p in found.passages)  # the running bot reads the new index
    assert "re-ingested at" in (await client.get("/knowledge")).text
    assert (await client.post("/knowledge/ingest", data={"id": "../../etc"})).status_code == 404


async def test_logs_show_recent_lines_by_level_without_secrets(page: Page, client: httpx.AsyncClient,
                                                               logged: None) -> None:
    log = logging.getLogger("bot.probe")
    log.info("an ordinary line about apples")
    log.warning("calling with key %s and page token %s <script>alert(3)</script>", API_KEY, TOKEN)
    everything = await client.get("/logs")
    assert "an ordinary line about apples" in everything.text
    assert everything.text.index("alert(3)") < everything.text.index("ordinary line")  # newest first
    warnings = await client.get("/logs?level=warning")
    assert "an ordinary line" not in warnings.text and "calling with key ***" in warnings.text
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in warnings.text
    for page_text in (everything.text, warnings.text):
        assert API_KEY not in page_text and TOKEN not in page_text and "<script>alert" not in page_text
    assert "apples" in (await client.get("/logs?q=apples")).text
    assert "alert(3)" not in (await client.get("/logs?q=apples")).text
