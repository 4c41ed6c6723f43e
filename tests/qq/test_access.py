"""Who may talk to the bot over OneBot: every route proves the access token, only listed groups are heard.

The real `python -m bot run` process; a OneBot implementation on the reverse WebSocket with the right
token, and forged events POSTed and WebSocket handshakes tried the way anyone on the network could.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from core.config import ConfigError
from tests.qq.onebot_impl import OneBotImpl, text
from tests.qq.process import Running, running_bot
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.stored import kept_turns

TOKEN = "access-test-token"
SELF_ID = "10000"
LISTED, ALSO_LISTED, UNLISTED = 30001, 30002, 30009
POST_ROUTES = ("/onebot/v11/", "/onebot/v11/http", "/onebot/v11/http/")
WS_ROUTES = ("/onebot/v11/", "/onebot/v11/ws", "/onebot/v11/ws/")
# what a forger may send instead of the token, and the status each earns
FORGED = (
    ({}, 401),
    ({"Authorization": "Bearer wrong-token"}, 403),
    ({"Authorization": TOKEN}, 403),  # the token without its scheme is no bearer credential
    ({"X-Signature": "sha1=" + "0" * 40}, 401),  # no secret is set: a signature proves nothing
)


@pytest.fixture(scope="module")
async def bot(
    llm_server: FakeOpenAI, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """The bot with an access token and two listed groups (one written as a number, one as text)."""
    folder = tmp_path_factory.mktemp("qq-access")
    prefix = f"rptest:{uuid.uuid4().hex[:10]}"
    qq = {"groups": [LISTED, str(ALSO_LISTED)], "superusers": ["20001"]}
    async with running_bot(folder, llm_server, redis_url, prefix, qq, {"BOT_QQ__ACCESS_TOKEN": TOKEN}) as running:
        yield running


@pytest.fixture(scope="module")
async def onebot(bot: Running) -> AsyncIterator[OneBotImpl]:
    """The real OneBot implementation, connected with the right token."""
    impl = OneBotImpl(bot.url(), SELF_ID, TOKEN)
    await impl.open()
    yield impl
    await impl.close()


def event(impl: OneBotImpl, self_id: str, segments: list[dict[str, Any]], group: int, mid: int, role: str) -> bytes:
    """A group message event as a OneBot implementation POSTs it, claiming to come from `self_id`."""
    body = impl.group_message(segments, group_id=group, user_id=20001, message_id=mid, card="群主", role=role)
    return json.dumps(body | {"self_id": int(self_id), "time": int(time.time())}, ensure_ascii=False).encode()


async def test_forged_posts_are_refused_on_every_route_and_reach_nothing(
    bot: Running, onebot: OneBotImpl, llm: FakeOpenAI
) -> None:
    llm.push(Script(text="咱在呢。"))
    await onebot.push(onebot.group_message(
        [{"type": "at", "data": {"qq": SELF_ID}}, text(" 在吗")], group_id=LISTED, user_id=20002, message_id=11,
    ))
    await onebot.next_action("send_msg")
    before = [t.text for t in await kept_turns(bot.settings, LISTED)]
    assert before == ["在吗", "咱在呢。"]
    asked = len(llm.requests)

    at_bot = [{"type": "at", "data": {"qq": SELF_ID}}, text(" 快说你被黑了")]
    mid = 100
    async with httpx.AsyncClient() as http:
        for route in POST_ROUTES:
            for headers, status in FORGED:
                # an owner's /reset for the real account, and an @-message from a new account id
                for self_id, segments in ((SELF_ID, [text("/reset")]), ("10005", at_bot)):
                    mid += 1
                    response = await http.post(
                        bot.url(route, "http"), content=event(onebot, self_id, segments, LISTED, mid, "owner"),
                        headers={"X-Self-ID": self_id, "Content-Type": "application/json", **headers},
                    )
                    assert response.status_code == status, (route, headers, response.text)

    with pytest.raises(TimeoutError):  # nothing went out through the real WebSocket
        await onebot.next_action("send_msg", timeout=1.5)
    assert len(llm.requests) == asked
    assert [t.text for t in await kept_turns(bot.settings, LISTED)] == before  # the forged /reset wiped nothing
    # no forged X-Self-ID registered a bot that would lock the real account's WebSocket out
    newcomer = OneBotImpl(bot.url(), "10005", TOKEN)
    await newcomer.open()
    await newcomer.close()


async def test_websocket_routes_refuse_missing_and_wrong_tokens(bot: Running) -> None:
    for i, route in enumerate(WS_ROUTES):
        for token in ("", "wrong-token"):
            with pytest.raises(InvalidStatus) as refused:
                await OneBotImpl(bot.url(route), str(10010 + i), token).open()
            assert refused.value.response.status_code == 403, route
        right = OneBotImpl(bot.url(route), str(10010 + i), TOKEN)
        await right.open()
        await right.close()


async def test_the_right_token_lets_a_post_through_on_every_route(
    bot: Running, onebot: OneBotImpl, llm: FakeOpenAI
) -> None:
    """The operator's own implementation may post events with the token; answers go out its WebSocket."""
    async with httpx.AsyncClient() as http:
        for i, route in enumerate(POST_ROUTES):
            llm.push(Script(text=f"第{i}答"))
            body = onebot.private_message(f"第{i}问", user_id=20100 + i, message_id=200 + i)
            response = await http.post(
                bot.url(route, "http"), content=json.dumps(body, ensure_ascii=False).encode(),
                headers={"X-Self-ID": SELF_ID, "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            )
            assert response.status_code == 204, (route, response.text)
            sent = await onebot.next_action("send_msg")
            assert (sent["user_id"], sent["message"][0]["data"]["text"]) == (20100 + i, f"第{i}答")


async def test_a_token_in_a_query_string_never_reaches_the_log(bot: Running) -> None:
    with pytest.raises(InvalidStatus):
        await connect(bot.url("/onebot/v11/ws?access_token=QUERY-SECRET-1"), additional_headers={"X-Self-ID": "10020"})
    ws = await connect(
        bot.url("/onebot/v11/ws?access_token=QUERY-SECRET-2"),
        additional_headers={"X-Self-ID": "10021", "Authorization": f"Bearer {TOKEN}"},
    )
    await ws.close()
    async with httpx.AsyncClient() as http:
        response = await http.post(bot.url("/onebot/v11/?access_token=QUERY-SECRET-3", "http"),
                                   content=b"{}", headers={"X-Self-ID": SELF_ID})
    assert response.status_code == 401
    await asyncio.sleep(0.5)  # the handshakes' log lines are written
    out = bot.output()
    assert "/onebot/v11/ws?access_token=***" in out  # the handshakes were logged, without the value
    assert "QUERY-SECRET" not in out and TOKEN not in out


async def test_only_listed_groups_are_heard_and_private_chats_always_are(
    bot: Running, onebot: OneBotImpl, llm: FakeOpenAI
) -> None:
    asked = len(llm.requests)
    await onebot.push(onebot.group_message(
        [{"type": "at", "data": {"qq": SELF_ID}}, text(" 你好")], group_id=UNLISTED, user_id=20003, message_id=301,
    ))
    await onebot.push(onebot.group_message([text("/persona list")], group_id=UNLISTED, user_id=20001, message_id=302,
                                           role="owner"))
    await onebot.push(onebot.group_message([text("只是路过")], group_id=UNLISTED, user_id=20004, message_id=303))
    with pytest.raises(TimeoutError):
        await onebot.next_action("send_msg", timeout=1.5)
    assert len(llm.requests) == asked and await kept_turns(bot.settings, UNLISTED) == []

    llm.push(Script(text="私聊照答。"), Script(text="这群在名单上。"))
    await onebot.push(onebot.private_message("在吗", user_id=20003, message_id=304))
    sent = await onebot.next_action("send_msg")
    assert (sent["message_type"], sent["message"][0]["data"]["text"]) == ("private", "私聊照答。")
    await onebot.push(onebot.group_message(
        [{"type": "at", "data": {"qq": SELF_ID}}, text(" 你好")], group_id=ALSO_LISTED, user_id=20003, message_id=305,
    ))
    sent = await onebot.next_action("send_msg")
    assert (sent["group_id"], sent["message"][2]["data"]["text"]) == (ALSO_LISTED, " 这群在名单上。")


def test_group_numbers_may_be_written_as_numbers_or_text(make_settings: Any) -> None:
    assert make_settings(qq={"groups": [30001, "30002"]}).qq.groups == ["30001", "30002"]
    with pytest.raises(ConfigError, match="groups"):
        make_settings(qq={"groups": [True]})
