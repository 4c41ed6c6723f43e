"""The page every web test starts (a module needing other settings defines its own `page`), and a logged-in client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

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
