"""Group manners through a real App: rate limits with a voice, calls without words, pictures, names."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bot.app import App
from bot.pipeline.stages.guard import CALLED, PICTURE
from core.messages import Attachment, Incoming
from memory.turns import SessionKey
from persona.lines import NO_PICTURES, RATE_LIMITED
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder
from tests.support.requests import replies

GROUP = SessionKey("horo", "test", "group", "g1")
_ids = itertools.count(1)


def at_bot(text: str, uid: str = "u1", **kw: Any) -> Incoming:
    """A group message that @s the bot, with a message id of its own."""
    return Incoming("test", "g1", uid, "Alice", text, message_id=f"m{next(_ids)}", mentions_bot=True, **kw)


def llm_cfg(srv: FakeOpenAI) -> dict[str, Any]:
    return {"base_url": srv.base_url, "model": "test-model", "retry_after": 0}


def chats(srv: FakeOpenAI) -> list[dict[str, Any]]:
    return replies(srv.requests)


def last_user(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


async def test_over_the_limit_one_notice_in_character_then_silence_and_everything_kept(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app: App = await app_factory(make_settings(llm=llm_cfg(llm), bot={"rate_limit_per_minute": 2, "merge_bursts": False}))
    horo = app.personas.get("horo").card.lines.rate_limited
    sunk: list[str] = []

    async def sink(delta: str) -> None:
        sunk.append(delta)

    replies = [await app.chain.handle(at_bot(f"第{i}句"), Recorder(partial=sink)) for i in range(5)]
    assert [r is not None for r in replies] == [True, True, True, False, False]
    notice = replies[2]
    assert notice is not None and notice.mode == "canned" and notice.text in horo and sunk[-1] == notice.text
    assert len(chats(llm)) == 2  # the notice needed no model
    stored = await app.store.recent(GROUP, 20)
    kept = [(t.text, t.addressed) for t in stored if t.role == "user"]
    assert kept == [("第0句", True), ("第1句", True), ("第2句", False), ("第3句", False), ("第4句", False)]
    assert not any(t.text == notice.text for t in stored)  # a notice is not part of the story
    assert await app.chain.handle(at_bot("我是别人", uid="u2")) is not None  # the limit is per user
    # what was said over the limit is context the model reads
    prompt = "\n".join(str(m["content"]) for m in chats(llm)[-1]["messages"])
    assert "Alice: 第4句" in prompt and notice.text not in prompt


async def test_the_limit_is_shared_by_processes_on_one_redis(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        llm=llm_cfg(llm), bot={"rate_limit_per_minute": 3, "merge_bursts": False},
        memory={"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix},
    )
    first: App = await app_factory(settings)
    second: App = await app_factory(settings)
    modes = [getattr(await app.chain.handle(at_bot(f"m{i}")), "mode", None) for i, app in enumerate([first, second] * 3)]
    assert modes == ["model", "model", "model", "canned", None, None]


async def test_the_terminal_is_never_limited(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app: App = await app_factory(make_settings(llm=llm_cfg(llm), bot={"rate_limit_per_minute": 1, "merge_bursts": False}))
    replies = [await app.chain.handle(Incoming("terminal", "s", "s", "me", f"第{i}句", is_direct=True)) for i in range(4)]
    assert all(r is not None and r.mode == "model" for r in replies)


async def test_a_card_without_lines_of_its_own_speaks_its_language(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, tmp_path: Path
) -> None:
    card = tmp_path / "imported" / "scout" / "card.toml"
    card.parent.mkdir(parents=True)
    card.write_text('name = "Scout"\nlanguage = "en"\nfirst_mes = "Hi."\n', encoding="utf-8")
    app: App = await app_factory(make_settings(llm=llm_cfg(llm), bot={"rate_limit_per_minute": 1, "merge_bursts": False}))
    await app.conversations.set_persona(at_bot("").conversation, "scout")
    assert (await app.chain.handle(at_bot("hello"))) is not None
    notice = await app.chain.handle(at_bot("hello again"))
    assert notice is not None and notice.text in RATE_LIMITED["en"]
    picture = await app.chain.handle(at_bot("", uid="u2", attachments=(Attachment("image", "https://x/a.png"),)))
    assert picture is not None and picture.text in NO_PICTURES["en"]


async def test_an_at_with_no_words_is_a_call_by_name(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app: App = await app_factory(make_settings(llm=llm_cfg(llm)))
    llm.push(Script(text="叫咱何事？"))
    reply = await app.chain.handle(at_bot("  \u200b\u202e "))
    assert reply is not None and reply.text == "叫咱何事？"
    assert last_user(chats(llm)[-1]) == f"Alice: {CALLED['zh']}"
    # not addressed and no words: nothing to answer, nothing to keep
    assert await app.chain.handle(Incoming("test", "g1", "u3", "Bob", "\u200b")) is None
    assert len(chats(llm)) == 1


async def test_a_picture_alone_gets_a_line_without_the_model_and_is_remembered(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app: App = await app_factory(make_settings(llm=llm_cfg(llm)))
    image = (Attachment("image", "https://cdn/a.png", "a.png"),)
    reply = await app.chain.handle(at_bot("", attachments=image))
    horo = app.personas.get("horo")
    assert reply is not None and reply.mode == "canned" and reply.text in horo.card.lines.no_pictures
    assert llm.requests == []
    stored = await app.store.recent(GROUP, 10)
    assert [(t.role, t.text) for t in stored] == [("user", PICTURE["zh"]), ("assistant", reply.text)]
    # a picture with words is answered by the model as usual (in a DM: no @ needed)
    llm.push(Script(text="好看。"))
    dm = Incoming("test", "d1", "u1", "Alice", "看这个", is_direct=True, attachments=image)
    assert (await app.chain.handle(dm)) is not None and last_user(chats(llm)[-1]) == "看这个"


async def test_hidden_characters_cannot_hide_the_name_or_break_the_store(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    for memory in ({"backend": "sqlite"}, {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix}):
        app: App = await app_factory(make_settings(llm=llm_cfg(llm), memory=memory))
        llm.push(Script(text="咱在。"))
        msg = Incoming("test", "g1", "u9", "阿青\ud83d\u202e", "赫\u200b萝你在吗\ud83d", message_id=f"x{next(_ids)}")
        reply = await app.chain.handle(msg)
        assert reply is not None and reply.text == "咱在。", memory
        assert last_user(chats(llm)[-1]) == "阿青: 赫萝你在吗"
        stored = await app.store.recent(GROUP, 10)
        assert [(t.name, t.text) for t in stored if t.role == "user"][-1] == ("阿青", "赫萝你在吗")
