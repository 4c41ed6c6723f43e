"""The page every web test starts (a module needing other settings defines its own `page`), a logged-in client,
and the bot's own logging with its ring of recent lines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from core.logs import setup_logging
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI
from tests.web.support import Page, logged_in, running_page, web_section


@pytest.fixture
async def page(make_settings: MakeSettings, llm: FakeOpenAI) -> AsyncIterator[Page]:
    """The real App and page on a free port, answering with the local test model server."""
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, web=web_section())
    async with running_page(settings) as started:
        yield started


@pytest.fixture
async def client(page: Page) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: logged in, sending this page's Origin."""
    async with logged_in(page) as c:
        yield c


@pytest.fixture
def logged(page: Page) -> Iterator[None]:
    """The bot's own logging set-up (with its ring), undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("INFO", page.app.settings.secrets())
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
