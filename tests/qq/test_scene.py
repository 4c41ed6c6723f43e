"""A QQ scene end to end: `python -m bot run`, two OneBot accounts (two self ids) on reverse WebSocket,
each playing its character ([qq] accounts), the local model server answering as whoever is asked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.qq.onebot_impl import OneBotImpl, text
from tests.qq.process import Running, running_bot
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.stored import kept_turns

TOKEN = "scene-test-token"
HORO_ID, YEXIU_ID = "10001", "10002"
GROUP = 30077


@pytest.fixture(scope="module")
async def bot(llm_server: FakeOpenAI, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """One bot process; each account plays its own character."""
    folder = tmp_path_factory.mktemp("qq-scene")
    prefix = f"rptest:{uuid.uuid4().hex[:10]}"
    qq = {"accounts": {HORO_ID: "horo", YEXIU_ID: "yexiu"}}
    env = {"BOT_QQ__ACCESS_TOKEN": TOKEN, "BOT_PACING__ENABLED": "false"}
    async with running_bot(folder, llm_server, redis_url, prefix, qq, env) as running:
        yield running


@pytest.fixture(scope="module")
async def accounts(bot: Running) -> AsyncIterator[tuple[OneBotImpl, OneBotImpl]]:
    """Two OneBot implementations (NapCat, Lagrange...), one per account, both connected to the one process."""
    horo, yexiu = OneBotImpl(bot.url(), HORO_ID, TOKEN), OneBotImpl(bot.url(), YEXIU_ID, TOKEN)
    await horo.open()
    await yexiu.open()
    await asyncio.sleep(0.3)  # both accounts registered with the bot
    yield horo, yexiu
    await horo.close()
    await yexiu.close()


def by_persona(body: dict[str, Any]) -> str:
    """Which character a request is for: its system prompt names it."""
    return "horo" if "约伊兹" in body["messages"][0]["content"] else "yexiu"


async def to_both(accounts: tuple[OneBotImpl, OneBotImpl], segments: list[dict[str, Any]], mid: int,
                  other_mid: int | None = None) -> None:
    """The one group message, as each account's implementation pushes it: the same message id (go-cqhttp,
    Lagrange), or with `other_mid` the second account's own (NapCat numbers it per account)."""
    for impl, own in zip(accounts, (mid, other_mid or mid), strict=True):
        await impl.push(impl.group_message(segments, group_id=GROUP, user_id=20001, message_id=own, card="阿青"))


def quoted(action: dict[str, Any]) -> str:
    """The message id a send_msg quotes ("" when none)."""
    return next((str(seg["data"]["id"]) for seg in action["message"] if seg["type"] == "reply"), "")


def said(action: dict[str, Any]) -> str:
    """The text a send_msg carries."""
    return "".join(seg["data"].get("text", "") for seg in action["message"] if seg["type"] == "text").strip()


async def silent(impl: OneBotImpl, seconds: float = 1.0) -> bool:
    """Nothing more was sent through this account."""
    try:
        await impl.next_action("send_msg", timeout=seconds)
    except TimeoutError:
        return True
    return False


async def test_an_at_reaches_only_its_character(accounts: tuple[OneBotImpl, OneBotImpl], llm: FakeOpenAI) -> None:
    horo, yexiu = accounts
    llm.responder = lambda body: Script(text={"horo": "汝叫咱？", "yexiu": "叫我干嘛。"}[by_persona(body)])
    await to_both(accounts, [{"type": "at", "data": {"qq": YEXIU_ID}}, text(" 出来一下")], 401)
    sent = await yexiu.next_action("send_msg")
    assert said(sent) == "叫我干嘛。" and sent["group_id"] == GROUP
    assert await silent(horo) and await silent(yexiu, 0.3)
    assert len(llm.requests) == 1  # the copy the other account received was not handled again


async def test_a_message_naming_both_gets_one_reply_from_each_in_turn(
    bot: Running, accounts: tuple[OneBotImpl, OneBotImpl], llm: FakeOpenAI
) -> None:
    horo, yexiu = accounts
    llm.responder = lambda body: Script(text={"horo": "咱觉得苹果最好。", "yexiu": "随便，我去打游戏了。"}[by_persona(body)])
    await to_both(accounts, [text("赫萝，叶修，晚饭吃什么？")], 402)
    first = await horo.next_action("send_msg")
    second = await yexiu.next_action("send_msg")
    assert (said(first), said(second)) == ("咱觉得苹果最好。", "随便，我去打游戏了。")
    assert await silent(horo) and await silent(yexiu, 0.3)
    assert [by_persona(b) for b in llm.requests] == ["horo", "yexiu"]
    second_prompt = llm.requests[1]["messages"]
    assert any(m["role"] == "user" and "赫萝: 咱觉得苹果最好。" in m["content"] for m in second_prompt)
    assert not any(m["role"] == "assistant" and "苹果" in m["content"] for m in second_prompt)
    kept = await kept_turns(bot.settings, GROUP, "yexiu", 20)
    assert [(t.role, t.speaker, t.text) for t in kept][-3:] == [
        ("user", "", "赫萝，叶修，晚饭吃什么？"), ("user", "horo", "咱觉得苹果最好。"), ("assistant", "", "随便，我去打游戏了。")]


async def test_one_message_numbered_per_account_makes_one_round_and_each_account_quotes_its_own_id(
    accounts: tuple[OneBotImpl, OneBotImpl], llm: FakeOpenAI
) -> None:
    horo, yexiu = accounts
    llm.responder = lambda body: Script(text={"horo": "去看海吧。", "yexiu": "我在家打副本。"}[by_persona(body)])
    await to_both(accounts, [text("赫萝，叶修，明天去哪儿玩？")], 405, 900405)
    first = await horo.next_action("send_msg")
    second = await yexiu.next_action("send_msg")
    assert (said(first), said(second)) == ("去看海吧。", "我在家打副本。")
    assert (quoted(first), quoted(second)) == ("405", "900405")  # each account's id for the one message
    assert await silent(horo) and await silent(yexiu, 0.3)
    assert [by_persona(b) for b in llm.requests] == ["horo", "yexiu"]  # one round, not one per copy


async def test_characters_stop_within_max_bot_turns_and_their_own_lines_start_nothing(
    accounts: tuple[OneBotImpl, OneBotImpl], llm: FakeOpenAI
) -> None:
    horo, yexiu = accounts
    lines = {"horo": ["叶修，汝说呢？", "叶修又偷懒。", "叶修！", "叶修？"], "yexiu": ["赫萝你问我？", "赫萝别闹。", "赫萝。"]}
    llm.responder = lambda body: Script(text=lines[by_persona(body)].pop(0))
    await to_both(accounts, [{"type": "at", "data": {"qq": HORO_ID}}, text(" 你好")], 403)
    got = [said(await horo.next_action("send_msg")), said(await yexiu.next_action("send_msg")),
           said(await horo.next_action("send_msg"))]
    assert got == ["叶修，汝说呢？", "赫萝你问我？", "叶修又偷懒。"]  # [scene] max_bot_turns = 3
    # each account also receives the other character's lines as group messages: they start nothing
    for mid, (impl, author) in enumerate([(yexiu, HORO_ID), (horo, YEXIU_ID)], start=9001):
        await impl.push(impl.group_message([text("叶修赫萝")], group_id=GROUP, user_id=int(author), message_id=mid))
    assert await silent(horo, 1.5) and await silent(yexiu, 0.3)
    assert len(llm.requests) == 3


async def first_private(accounts: tuple[OneBotImpl, OneBotImpl]) -> tuple[str, dict[str, Any]]:
    """The first private message either account sends: (its self id, the action)."""
    waits = {asyncio.ensure_future(impl.next_action("send_private_msg")): impl.self_id for impl in accounts}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    task = done.pop()
    return waits[task], task.result()


async def test_why_and_memory_answer_as_the_character_asked(accounts: tuple[OneBotImpl, OneBotImpl]) -> None:
    # `/why @赫萝`: both accounts take it as a command; whichever answers, it explains Horo's last reply
    await to_both(accounts, [text("/why "), {"type": "at", "data": {"qq": HORO_ID}}], 410)
    _, why = await first_private(accounts)
    assert said(why).startswith("The last reply of 赫萝 (to 叶修"), said(why)
    await to_both(accounts, [text("/why 叶修")], 411)
    _, why = await first_private(accounts)
    assert said(why).startswith("The last reply of 叶修 (to 赫萝"), said(why)
    # `@叶修 /memory`: the account @-ed answers, as its character
    await to_both(accounts, [{"type": "at", "data": {"qq": YEXIU_ID}}, text(" /memory")], 412)
    sender, memory = await first_private(accounts)
    assert sender == YEXIU_ID and said(memory).startswith("What 叶修 remembers about 阿青")
    assert {int(why["user_id"]), int(memory["user_id"])} == {20001}  # to the asker alone
    # another member asking the same gets an answer about themselves, to them alone
    for impl in accounts:
        await impl.push(impl.group_message([{"type": "at", "data": {"qq": YEXIU_ID}}, text(" /memory")], group_id=GROUP,
                                           user_id=20002, message_id=413, card="小明"))
    _, theirs = await first_private(accounts)
    assert int(theirs["user_id"]) == 20002 and said(theirs).startswith("What 叶修 remembers about 小明")
    assert "阿青" not in said(theirs)
    for impl in accounts:  # each command was answered once, by one account, and nothing of it in the group
        with pytest.raises(TimeoutError):
            await impl.next_action("send_private_msg", timeout=0.4)
        assert await silent(impl, 0.3)
