"""/memory, /forget and /why: the shared command logic and the terminal's commands."""

from __future__ import annotations

import io
from typing import Any

from bot.app import App, Clocks
from bot.commands.handlers import BadArgument, Commands, forget_arg
from bot.terminal.chat import TerminalChat
from core.messages import Incoming
from memory.turns import Fact, FactBook, SessionKey, Summary
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import is_background

T0 = 1_700_000_000.0
DAY = 86400.0
GROUP = SessionKey("horo", "test", "group", "g1")


def group(text: str, uid: str = "u1", name: str = "阿青", mid: str = "", channel: str = "g1") -> Incoming:
    return Incoming("test", channel, uid, name, text, message_id=mid)


async def open_app(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, **memory: Any) -> tuple[App, list[float]]:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"},
                             memory={"backend": "sqlite", "summary": False, "facts": True, **memory},
                             knowledge={"enabled": True, "mode": "bm25"}, bot={"rate_limit_per_minute": 100_000})
    now = [T0]
    return await app_factory(settings, clocks=Clocks(wall=lambda: now[0])), now


async def plant(app: App, user_id: str, *facts: tuple[str, str, float]) -> None:
    """Facts as extraction would have stored them: (text, conversation, when)."""
    book = FactBook(tuple(Fact(i, text, at, where) for i, (text, where, at) in enumerate(facts, start=1)))
    await app.store.change_facts("horo", "test", user_id, lambda _: book)


def test_forget_argument() -> None:
    assert forget_arg(" ALL ") == "all" and forget_arg("２") == 2
    for bad in ("", "0", "-1", "two", "1 2"):
        try:
            forget_arg(bad)
        except BadArgument as exc:
            assert "Usage: /forget" in str(exc)
        else:
            raise AssertionError(bad)


async def test_memory_lists_your_facts_here_numbered_with_their_age_and_the_summary(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, now = await open_app(make_settings, app_factory, llm)
    await plant(app, "u1", ("住在北京", "group:g1", T0), ("养了一只猫叫团子", "group:g1", T0 + DAY),
                ("在另一个群说的", "group:g2", T0), ("从旧版本来的", "", 0.0))
    await app.store.set_summary(GROUP, Summary("大家在聊搬家。", 1))
    now[0] = T0 + 4 * DAY
    shown = (await Commands(app).memory(group(""))).text
    assert "1. 住在北京（四天前）" in shown and "2. 养了一只猫叫团子（三天前）" in shown
    assert "在另一个群说的" not in shown
    # a fact of unknown origin (rp:v1) may have been said in private: only a private chat lists it
    assert "从旧版本来的" not in shown
    private = (await Commands(app).memory(Incoming("test", "u1", "u1", "阿青", "", is_direct=True))).text
    assert "1. 从旧版本来的" in private and "住在北京" not in private
    assert "大家在聊搬家。" in shown
    other = (await Commands(app).memory(group("", uid="u2", name="小红"))).text
    assert "(nothing yet)" in other and "住在北京" not in other


async def test_forget_one_all_and_for_someone_else(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app, _ = await open_app(make_settings, app_factory, llm)
    commands = Commands(app)
    await plant(app, "u1", ("住在北京", "group:g1", T0), ("养猫", "group:g1", T0), ("喜欢苹果", "group:g1", T0),
                ("在另一个群说的", "group:g2", T0))
    done = await commands.forget(group(""), 2)
    assert done.ok and "forgot fact 2 about you" in done.text
    assert await app.store.facts("horo", "test", "u1") == ["住在北京", "喜欢苹果", "在另一个群说的"]
    missing = await commands.forget(group(""), 5)
    assert not missing.ok and "nothing numbered 5" in missing.text
    # an admin's request (the platform checked the permission) for another user
    await plant(app, "u2", ("是程序员", "group:g1", T0))
    assert "about that user" in (await commands.forget(group(""), "all", user_id="u2")).text
    assert await app.store.facts("horo", "test", "u2") == []
    assert "forgot 2 facts" in (await commands.forget(group(""), "all")).text
    assert await app.store.facts("horo", "test", "u1") == ["在另一个群说的"]  # another conversation's stays


async def test_why_names_the_memories_facts_lore_and_summary_the_last_reply_was_given(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, now = await open_app(make_settings, app_factory, llm, max_turns=20)
    commands = Commands(app)
    assert (await commands.why(group(""))).text == "No reply here yet to explain."
    llm.responder = lambda body: Script(text="[]") if is_background(body) else None
    llm.default = Script(text="呵呵。")
    await plant(app, "u1", ("住在北京", "group:g1", T0))
    await app.chain.handle(group("我家的猫叫团子，特别黏人", mid="1"))
    for i in range(40):
        now[0] += 600
        await app.chain.handle(group(f"随便聊聊第{i}句", uid="u3", name="路人", mid=str(10 + i)))
    now[0] += 600
    await app.chain.handle(group("赫萝，还记得我家猫叫什么吗？顺便给你带了苹果", mid="99"))
    why = (await commands.why(group(""))).text
    assert why.startswith("The last reply (to 阿青, just now) was given:")
    assert "memories:\n- [六个小时前 · 阿青] 我家的猫叫团子，特别黏人" in why  # 41 x 10 minutes ago
    assert "facts:\n- [六个小时前] 住在北京" in why
    assert "lore:\n- " in why and "苹果" in why.split("lore:")[1]
    # a reset forgets the record with the rest of the conversation
    await app.conversations.reset(group(""))
    assert (await commands.why(group(""))).text == "No reply here yet to explain."


async def test_why_after_an_example_line_says_no_model_was_asked(make_settings: MakeSettings, app_factory: Any) -> None:
    settings = make_settings(llm={"provider": "offline"}, memory={"backend": "sqlite"})
    app: App = await app_factory(settings)
    await app.chain.handle(group("赫萝你好", mid="1"))
    assert "no model was asked" in (await Commands(app).why(group(""))).text


async def test_terminal_commands(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app, _ = await open_app(make_settings, app_factory, llm)
    out = io.StringIO()
    chat = TerminalChat(app, "s1", out=out)
    await app.store.change_facts("horo", "terminal", "s1", lambda _: FactBook((Fact(1, "喜欢下棋", T0, "dm:s1"),)))
    assert await chat._command("/memory") and "1. 喜欢下棋" in out.getvalue()
    assert await chat._command("/forget x") and "Usage: /forget" in out.getvalue()
    assert await chat._command("/forget 1") and "forgot fact 1 about you" in out.getvalue()
    assert await app.store.facts("horo", "terminal", "s1") == []
    assert await chat._command("/why") and "No reply here yet" in out.getvalue()
    assert await chat._command("/help") and "/forget WHICH [CHARACTER] [@user]" in out.getvalue()
