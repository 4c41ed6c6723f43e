"""The page in a real headless browser (Debian's chromium through chromedriver): login, chat, escaping, forget, phone size.

The page's server runs in the test's event loop, so every blocking browser call goes through a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest

from core.logs import LogRing, setup_logging
from core.messages import Incoming
from memory.knowledge import knowledge_root
from memory.knowledge.index import Layout
from memory.knowledge.ingest import Ingestor
from memory.turns import Fact, FactBook, SessionKey
from tests.conftest import ROOT
from tests.support.openai_server import FakeOpenAI, Script
from tests.web.support import HOSTILE_NAME, HOSTILE_TEXT, TOKEN, Page

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

DRIVER = Path("/usr/bin/chromedriver")
# README's pictures: retaken into docs/ with BOT_TEST_SCREENSHOTS=1, else into a scratch folder
SHOTS = ROOT / "docs" if os.environ.get("BOT_TEST_SCREENSHOTS") else Path(tempfile.gettempdir())
T = TypeVar("T")
pytestmark = pytest.mark.skipif(not DRIVER.exists() or not shutil.which("chromium"),
                                reason="chromium and chromium-driver are missing: bash .ci/browser.sh installs them")


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    # a phone's screen (a headless window is at least 500 px wide, so the device is emulated)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1}})
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(DRIVER)), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


async def off(fn: Callable[..., T], *args: Any) -> T:
    """A blocking browser call, off the loop the page's server runs in."""
    return await asyncio.to_thread(fn, *args)


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    def safe() -> bool:
        try:
            return check()
        except WebDriverException:  # the page is loading
            return False

    async with asyncio.timeout(seconds):
        while not await off(safe):
            await asyncio.sleep(0.05)


def no_alert(driver: Any) -> bool:
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def fits_phone(driver: Any) -> bool:
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    return bool(width[0] <= width[1] <= 390)


async def test_login_link_then_a_streamed_chat_on_a_phone_sized_screen(page: Page, llm: FakeOpenAI, browser: Any) -> None:
    said = "咱是约伊兹的贤狼赫萝。苹果很好吃呢，汝也尝尝？今晚的月亮真圆，适合喝一杯。"
    llm.push(Script(text=said, chunk_size=3, chunk_delay=0.005))
    await off(browser.get, f"{page.base}/?token={TOKEN}")
    assert browser.current_url == f"{page.base}/chat"  # the token is gone from the address
    cookie = next(c for c in await off(browser.get_cookies) if c["name"] == "rp_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    box = await off(browser.find_element, By.ID, "text")
    await off(box.send_keys, "你是谁？" + Keys.ENTER)
    await until(lambda: said in browser.find_element(By.ID, "log").text)
    assert "你是谁？" in (await off(browser.find_element, By.ID, "log")).text
    assert await off(fits_phone, browser)
    await off(browser.save_screenshot, str(SHOTS / "web-chat.png"))
    await off(browser.get, f"{page.base}/conversations")
    assert "web" in (await off(browser.find_element, By.TAG_NAME, "table")).text
    assert await off(fits_phone, browser)


async def test_hostile_qq_name_shows_literally_and_forget_removes_the_fact(page: Page, llm: FakeOpenAI, browser: Any) -> None:
    llm.push(Script(text="嗯。"))
    said = f"赫萝 {HOSTILE_TEXT}"
    await page.app.chain.handle(Incoming("qq", "12345", "777", HOSTILE_NAME, said, message_id="q1", mentions_bot=True))
    fact = Fact(1, "likes <b>red</b> apples", conversation="group:12345")
    await page.app.store.change_facts("horo", "qq", "777", lambda book: FactBook((fact,), book.noted))
    key = SessionKey("horo", "qq", "group", "12345")
    await off(browser.get, f"{page.base}/?token={TOKEN}")
    await off(browser.get, f"{page.base}/conversation?{urlencode({'key': str(key)})}")
    text = (await off(browser.find_element, By.TAG_NAME, "main")).text
    assert HOSTILE_NAME in text and "<script>alert(2)</script>" in text and "likes <b>red</b> apples" in text
    assert await off(no_alert, browser)
    assert not await off(browser.find_elements, By.CSS_SELECTOR, "main img, main script, main b")
    await off((await off(browser.find_element, By.CSS_SELECTOR, "details.why summary")).click)
    why = (await off(browser.find_element, By.CSS_SELECTOR, "details.why")).text
    assert "system prompt and card" in why and "the message" in why  # tokens per section, shown as text
    assert await off(fits_phone, browser)
    await off(browser.save_screenshot, str(SHOTS / "web-conversation.png"))
    button = await off(browser.find_element, By.CSS_SELECTOR, "ul.facts form button")
    await off(button.click)
    await until(lambda: "likes <b>red</b> apples" not in browser.find_element(By.TAG_NAME, "main").text)
    assert await page.app.store.facts("horo", "qq", "777") == []
    llm.push(Script(text="好。"))
    await page.app.chain.handle(Incoming("qq", "12345", "777", "Bob", "赫萝 还记得我吗", message_id="q2", mentions_bot=True))
    assert "red</b> apples" not in str(llm.requests[-1]["messages"])  # the next prompt no longer holds it


async def test_a_card_edited_in_the_form_changes_the_next_replys_system_prompt(page: Page, llm: FakeOpenAI,
                                                                              browser: Any) -> None:
    await off(browser.get, f"{page.base}/?token={TOKEN}")
    await off(browser.get, f"{page.base}/characters")
    assert "赫萝" in (await off(browser.find_element, By.CSS_SELECTOR, ".cards")).text
    assert await off(fits_phone, browser)
    await off(browser.get, f"{page.base}/character?id=horo")
    assert await off(fits_phone, browser)
    name = await off(browser.find_element, By.ID, "f-name")
    await off(name.clear)
    await off((await off(browser.find_element, By.CSS_SELECTOR, ".card-form button")).click)
    await until(lambda: "at least 1 character" in browser.find_element(By.ID, "f-name-error").text)
    assert await off(fits_phone, browser)
    await off(browser.save_screenshot, str(SHOTS / "web-character.png"))
    await off((await off(browser.find_element, By.ID, "f-name")).send_keys, "赫萝")
    prompt = await off(browser.find_element, By.ID, "f-system_prompt")
    await off(prompt.clear)
    await off(prompt.send_keys, "你是{{char}}，今晚在码头替人看船。")
    await off((await off(browser.find_element, By.CSS_SELECTOR, ".card-form button")).click)
    await until(lambda: "Saved" in browser.find_element(By.ID, "saved").text)
    llm.push(Script(text="呵呵，船咱看着呢。汝放心去吧。"))
    await off(browser.get, f"{page.base}/chat")
    await off((await off(browser.find_element, By.ID, "text")).send_keys, "船还好吗？" + Keys.ENTER)
    await until(lambda: "船咱看着呢" in browser.find_element(By.ID, "log").text)
    assert llm.requests[-1]["messages"][0]["content"].startswith("你是赫萝，今晚在码头替人看船。")


async def test_knowledge_reingest_shows_its_progress_and_logs_fit_a_phone(page: Page, browser: Any,
                                                                         tmp_path: Path) -> None:
    source = tmp_path / "xiyou.txt"
    source.write_text("第一回 花果山\n" + "花果山上有一块仙石，石中迸出一只石猴。" * 40, encoding="utf-8")
    Ingestor(Layout(knowledge_root(page.app.settings), "wukong"), ["孙悟空"], 300, 40, progress=False).run([source])
    source.write_text("第一回 花果山\n" + "花果山上有一块仙石，石中迸出一只石猴。" * 40 + "第二回 东海\n" + "木筏漂过东海。" * 40,
                      encoding="utf-8")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("INFO", [])  # the bot's logging, with the ring the logs page reads
    logging.getLogger("bot.probe").warning("a very long line " + "x" * 600)
    root.handlers[:] = [*handlers, *(h for h in root.handlers if isinstance(h, LogRing))]
    root.setLevel(level)
    await off(browser.get, f"{page.base}/?token={TOKEN}")
    await off(browser.get, f"{page.base}/knowledge")
    assert await off(fits_phone, browser)
    button = await off(browser.find_element, By.CSS_SELECTOR, 'form[action="/knowledge/ingest"] button')
    await off(button.click)
    await until(lambda: "re-ingested at" in browser.find_element(By.CSS_SELECTOR, '[data-persona="wukong"]').text, 60)
    assert "1 changed" in (await off(browser.find_element, By.CSS_SELECTOR, '[data-persona="wukong"]')).text
    assert await off(fits_phone, browser)
    await off(browser.get, f"{page.base}/logs?level=DEBUG")
    assert "a very long line" in (await off(browser.find_element, By.ID, "logs")).text
    assert await off(fits_phone, browser)
    root.handlers[:] = handlers
