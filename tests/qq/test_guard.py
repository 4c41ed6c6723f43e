"""OneBotGuard on its own: which credentials pass, what other paths see, how refusals are logged."""

from __future__ import annotations

import logging

import httpx
import pytest

from bot.hosting.onebot_guard import NOTE_EVERY, OneBotGuard, Receive, Scope, Send

TOKEN = "guard-token"


class Behind:
    """The app behind the guard: answers 204 and counts what reached it."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def post(guard: OneBotGuard, path: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
        return (await http.post(path, content=b"{}", headers=headers)).status_code


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer nope"}, 403),
    ({"Authorization": "Basic Z3VhcmQtdG9rZW4="}, 403),
    ({"Authorization": f"Bearer {TOKEN}"}, 204),
    ({"Authorization": f"token {TOKEN}"}, 204),
    ({"X-Signature": "sha1=abc"}, 401),
])
async def test_only_the_bearer_token_passes(headers: dict[str, str], status: int) -> None:
    behind = Behind()
    assert await post(OneBotGuard(behind, TOKEN), "/onebot/v11/", headers) == status
    assert behind.reached == (["/onebot/v11/"] if status == 204 else [])


async def test_with_a_secret_a_signed_post_goes_on_to_the_adapters_signature_check() -> None:
    behind = Behind()
    guard = OneBotGuard(behind, TOKEN, secret="s3cret")
    assert await post(guard, "/onebot/v11/", {"X-Signature": "sha1=abc"}) == 204
    assert await post(guard, "/onebot/v11/", {}) == 401


async def test_other_paths_are_not_its_business() -> None:
    behind = Behind()
    assert await post(OneBotGuard(behind, TOKEN), "/console/login", {}) == 204
    assert behind.reached == ["/console/login"]


async def test_a_flood_of_refusals_is_one_log_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    guard = OneBotGuard(Behind(), TOKEN, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="bot.hosting.onebot_guard"):
        for _ in range(50):
            await post(guard, "/onebot/v11/?access_token=leak", {})
        now[0] += NOTE_EVERY
        await post(guard, "/onebot/v11/http", {"Authorization": "Bearer nope"})
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "OneBot: http /onebot/v11/ from 127.0.0.1 refused (401)",
        "OneBot: http /onebot/v11/http from 127.0.0.1 refused (403); 49 more since the last note",
    ]
