"""Shared fixtures: the real Redis (own key prefix), a real OpenAI-compatible server, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from core.config import Settings, load_config
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port
from tests.support.shared_data import shared_dir

ROOT = Path(__file__).resolve().parent.parent
SHARED = shared_dir()  # the clean clone CI runs may sit elsewhere than beside shared/
REDIS_URL = os.environ.get("BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis that answers; the test command starts one when none runs (never skipped)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis at {REDIS_URL} ({exc}); run the tests with `make test`")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"rptest:{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeOpenAI]:
    """One OpenAI-compatible server on 127.0.0.1 for the session."""
    with FakeOpenAI() as srv:
        yield srv


@pytest.fixture
def llm(llm_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The server, cleared for this test."""
    llm_server.clear()
    llm_server.default = Script(text="嗯。")
    llm_server.responder = None
    llm_server.api_key = None
    llm_server.owned_by, llm_server.card = "test", {}
    yield llm_server
    llm_server.clear()


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Settings written as a real config.toml in tmp_path: `make_settings(llm={...}, memory={...})`."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("BOT_") and name != "BOT_TEST_REDIS_URL":
            monkeypatch.delenv(name)

    def build(**sections: dict[str, Any]) -> Settings:
        import tomli_w

        data: dict[str, Any] = {
            "bot": {"data_dir": str(tmp_path / "data")},
            "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(tmp_path / "imported")},
            "memory": {"backend": "sqlite"},
            "knowledge": {"enabled": False},
            # replies go out whole and at once unless a test turns pacing on (tests/*/test_pacing.py)
            "pacing": {"enabled": False},
            # the web page (on by default) on a port of its own: two runs on one machine never collide
            "web": {"port": free_port()},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        path = tmp_path / "config.toml"
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        return load_config(path)

    return build


@pytest.fixture
async def app_factory() -> AsyncIterator[Callable[..., Any]]:
    """Open App instances inside a test; all are closed at the end."""
    from contextlib import AsyncExitStack

    from bot.app import App

    async with AsyncExitStack() as stack:

        async def open_app(settings: Settings, **kw: Any) -> App:
            return await stack.enter_async_context(App.open(settings, **kw))

        yield open_app
