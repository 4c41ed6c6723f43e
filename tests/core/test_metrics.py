"""[metrics]: the Prometheus exporter served by a real App, scraped over HTTP."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from core.messages import Incoming
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.ports import free_port


def scrape(port: int) -> dict[str, float]:
    """Every sample on /metrics, keyed like `name{label="value"}`."""
    resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    resp.raise_for_status()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def moved(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def dm(text: str, uid: str, mid: str = "") -> Incoming:
    return Incoming("test", "dm-" + uid, uid, "Alice", text, message_id=mid, is_direct=True)


async def test_replies_move_the_counters_and_histograms(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    port = free_port()
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "test-model"},
        memory={"summary": False, "facts": False},
        metrics={"enabled": True, "port": port},
    )
    app: App = await app_factory(settings)
    before = scrape(port)
    llm.default = Script(text="呵呵，汝来得正好。", chunk_size=2)
    for i in range(3):
        reply = await app.chain.handle(dm(f"你好{i}", "m1", f"mid-{i}"))
        assert reply is not None and reply.mode == "model"
    assert await app.chain.handle(dm("你好0", "m1", "mid-0")) is None  # a duplicate delivery: in, no reply
    after = scrape(port)
    assert moved(before, after, 'bot_messages_in_total{platform="test"}') == 4
    assert moved(before, after, 'bot_replies_total{mode="model"}') == 3
    assert moved(before, after, "bot_reply_seconds_count") == 3
    assert moved(before, after, "bot_first_token_seconds_count") == 3
    assert after['bot_messages_lost_total{platform="qq"}'] == 0
    assert after["bot_model_queue_depth"] == 0 and after["bot_model_breaker_open"] == 0
    assert after["bot_store_available"] == 1
    assert after["process_resident_memory_bytes"] > 0


async def test_a_dead_model_server_moves_fallback_errors_and_the_breaker(
    make_settings: MakeSettings, app_factory: Any
) -> None:
    port, dead = free_port(), free_port()
    settings = make_settings(
        llm={"base_url": f"http://127.0.0.1:{dead}/v1", "model": "m", "retry_after": 60},
        memory={"summary": False, "facts": False},
        metrics={"enabled": True, "port": port},
    )
    app: App = await app_factory(settings)
    before = scrape(port)
    first = await app.chain.handle(dm("你好", "d1"))
    second = await app.chain.handle(dm("在吗", "d1"))
    assert first is not None and first.mode == "fallback" and second is not None and second.mode == "fallback"
    after = scrape(port)
    assert moved(before, after, 'bot_replies_total{mode="fallback"}') == 2
    assert moved(before, after, 'bot_model_errors_total{kind="server"}') == 1  # the second never asked: breaker
    assert after["bot_model_breaker_open"] == 1
    assert moved(before, after, "bot_first_token_seconds_count") == 0


async def test_off_by_default_and_a_taken_port_is_one_line(make_settings: MakeSettings, app_factory: Any) -> None:
    port = free_port()
    app: App = await app_factory(make_settings(llm={"provider": "offline"}, metrics={"port": port}))
    assert not app.settings.metrics.enabled
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"^\[metrics\] cannot listen on 127.0.0.1:{busy} \(.+\); set another port$"):
            await app_factory(make_settings(llm={"provider": "offline"}, metrics={"enabled": True, "port": busy}))


async def test_a_token_guards_the_exporter_and_a_public_host_needs_one(make_settings: MakeSettings, app_factory: Any) -> None:
    with pytest.raises(OSError, match=r"^\[metrics\] host '0.0.0.0' .* set BOT_METRICS__TOKEN"):
        await app_factory(make_settings(llm={"provider": "offline"}, metrics={"enabled": True, "host": "0.0.0.0"}))
    port = free_port()
    await app_factory(make_settings(llm={"provider": "offline"},
                                    metrics={"enabled": True, "port": port, "token": "s3cret-scrape-token"}))
    url = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    ok = httpx.get(url, headers={"Authorization": "Bearer s3cret-scrape-token"}, timeout=5)
    assert ok.status_code == 200 and "bot_messages_in_total" in ok.text
