"""Facts that stay true: add / update / delete decisions, where and when each was learned, scope."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.app import App, Clocks
from core.messages import Incoming
from memory.facts import FactOp, apply_ops, parse_ops
from memory.turns import Fact, FactBook, Turn
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import is_background, replies, system_text

T0 = 1_700_000_000.0
DAY = 86400.0


def test_parse_ops_reads_decisions_and_skips_anything_malformed() -> None:
    raw = """好的：
```json
[{"op": "add", "fact": "喜欢苹果"}, {"op": "update", "id": "2", "fact": "住在北京"}, {"op": "delete", "id": 3},
 {"op": "none"}, {"op": "delete"}, {"op": "update", "fact": ""}, 42, "养猫", {"action": "remove", "number": 1}]
```"""
    assert parse_ops(raw) == [
        FactOp("add", "喜欢苹果"), FactOp("update", "住在北京", 2), FactOp("delete", "", 3), FactOp("add", "养猫"),
        FactOp("delete", "", 1),
    ]
    assert parse_ops("no JSON here") == [] and parse_ops("[not json") == [] and parse_ops('{"op": "add"}') == []
    assert len(parse_ops(json.dumps([f"事实{i}" for i in range(9)], ensure_ascii=False))) == 5


def book(*facts: Fact) -> FactBook:
    return FactBook(tuple(facts))


SAID = [Turn("user", "我上个月搬到北京了", "u1", "阿青", True, T0 + 100, "m9", seq=9),
        Turn("user", "最近迷上了攀岩", "u1", "阿青", False, T0 + 50, "m7", seq=7)]


def test_apply_ops_adds_updates_and_deletes_against_the_numbered_facts() -> None:
    old = book(Fact(1, "住在杭州", T0, "group:g1"), Fact(2, "喜欢苹果", T0, "group:g1"), Fact(3, "在读大学", T0, ""))
    shown = list(old.facts)
    new = apply_ops(old, [FactOp("update", "住在北京", 1), FactOp("delete", "", 3), FactOp("add", "喜欢攀岩"),
                          FactOp("add", "喜欢苹果")], shown, SAID, "group:g1", 12, False)
    assert [f.text for f in new.facts] == ["住在北京", "喜欢苹果", "喜欢攀岩"]
    moved = new.facts[0]
    # learned from the message that said it: its time, id and turn; the place stays the fact's own
    assert (moved.id, moved.at, moved.message_id, moved.seq, moved.conversation) == (1, T0 + 100, "m9", 9, "group:g1")
    added = new.facts[2]
    assert (added.id, added.message_id, added.conversation) == (4, "m7", "group:g1")
    assert new.noted == {"group:g1": 9}


def test_apply_ops_leaves_facts_changed_meanwhile_and_keeps_the_limit_per_conversation() -> None:
    shown = [Fact(1, "住在杭州", T0, "group:g1")]
    meanwhile = book(Fact(2, "喜欢苹果", T0, "group:g1"), Fact(5, "养狗", T0, "group:g2"))  # fact 1 was forgotten
    new = apply_ops(meanwhile, [FactOp("update", "住在北京", 1)], shown, SAID, "group:g1", 12, False)
    assert [f.text for f in new.facts] == ["喜欢苹果", "养狗"]
    crowded = book(*(Fact(i, f"事实{i}", T0 + i, "group:g1") for i in range(1, 4)), Fact(9, "养狗", T0, "group:g2"))
    new = apply_ops(crowded, [FactOp("add", "喜欢攀岩")], [], SAID, "group:g1", 3, False)
    # the oldest fact of this conversation goes; the other conversation's is not counted
    assert [f.text for f in new.facts] == ["事实2", "事实3", "养狗", "喜欢攀岩"]


def test_visible_facts_are_per_conversation_unless_shared() -> None:
    facts = book(Fact(1, "a", conversation="group:g1"), Fact(2, "b", conversation="dm:u1"), Fact(3, "c", conversation=""))
    assert [f.text for f in facts.visible("group:g1", False)] == ["a"]
    assert [f.text for f in facts.visible("dm:u1", False)] == ["b", "c"]
    assert [f.text for f in facts.visible("dm:u1", True)] == ["a", "b", "c"]
    # what was said in private (or may have been: rp:v1 kept no origin) never reaches a group
    assert [f.text for f in facts.visible("group:g2", True)] == ["a"]


def group(text: str, uid: str = "u1", name: str = "阿青", channel: str = "g1", mid: str = "") -> Incoming:
    return Incoming("test", channel, uid, name, text, message_id=mid)


class FactModel:
    """Answers extraction requests by rules over the numbered facts and the messages, like a capable model."""

    RULES = ((r"住在(\w+)", "住在{0}", "住在"), (r"搬到(\w+?)了", "住在{0}", "住在"), (r"养了一只(\w+)", "养了一只{0}", None))

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Script | None:
        if not is_background(body):
            return None
        text = body["messages"][-1]["content"]
        self.prompts.append(text)
        known, _, said = text.partition("说的话】")
        numbered = {m.group(2): int(m.group(1)) for m in re.finditer(r"^(\d+)\. (.+)$", known, re.M)}
        ops: list[dict[str, Any]] = []
        for line in said.splitlines():
            for pattern, template, topic in self.RULES:
                if m := re.search(pattern, line):
                    fact = template.format(m.group(1))
                    old = next((n for t, n in numbered.items() if topic and t.startswith(topic)), None)
                    if fact in numbered:
                        continue
                    ops.append({"op": "update", "id": old, "fact": fact} if old else {"op": "add", "fact": fact})
        return Script(text=json.dumps(ops, ensure_ascii=False))


@pytest.fixture
async def facts_app(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> Any:
    async def make(**memory: Any) -> tuple[App, list[float], FactModel]:
        settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"},
                                 memory={"backend": "sqlite", "summary": False, "facts_every": 2, **memory},
                                 bot={"rate_limit_per_minute": 100_000})
        now = [T0]
        app = await app_factory(settings, clocks=Clocks(wall=lambda: now[0]))
        model = FactModel()
        llm.responder = model
        llm.default = Script(text="嗯，记下了。")
        return app, now, model

    return make


async def test_a_contradicted_fact_is_updated_not_kept_beside_the_new_one(facts_app: Any, llm: FakeOpenAI) -> None:
    app, now, model = await facts_app()
    await app.chain.handle(group("我住在杭州，西湖边上", mid="1"))  # unaddressed: context only
    await app.chain.handle(group("赫萝，你好呀", mid="2"))
    await app.background.drain()
    assert await app.store.facts("horo", "test", "u1") == ["住在杭州"]
    first = (await app.store.fact_book("horo", "test", "u1")).facts[0]
    assert (first.at, first.message_id, first.conversation) == (T0, "1", "group:g1")
    now[0] += 3 * DAY
    await app.chain.handle(group("我上个月搬到北京了", mid="3"))
    await app.chain.handle(group("赫萝，北京冬天好冷", mid="4"))
    await app.background.drain()
    # the extraction was shown the numbered fact and updated it
    assert "1. 住在杭州" in model.prompts[-1]
    assert "我住在杭州" not in model.prompts[-1]  # what was read before is not read again
    assert await app.store.facts("horo", "test", "u1") == ["住在北京"]
    now[0] += 2 * DAY
    await app.chain.handle(group("赫萝，还记得我住哪儿吗", mid="5"))
    prompt = system_text(replies(llm.requests)[-1])
    assert "> 阿青, 两天前: 住在北京" in prompt and "住在杭州" not in prompt.split("【你记得的往事】")[0]


async def test_facts_stay_in_their_conversation_unless_shared(facts_app: Any, llm: FakeOpenAI) -> None:
    app, _, _ = await facts_app()
    await app.chain.handle(group("我养了一只猫", mid="1"))
    await app.chain.handle(group("赫萝，你看", mid="2"))
    await app.background.drain()
    await app.chain.handle(group("赫萝，你好", channel="g2", mid="3"))
    assert "养了一只猫" not in system_text(replies(llm.requests)[-1])
    shared, _, _ = await facts_app(share_facts=True)
    await shared.chain.handle(group("赫萝，你好", channel="g2", mid="4"))
    assert "养了一只猫" in system_text(replies(llm.requests)[-1])


async def test_a_garbled_extraction_changes_nothing_but_the_read_mark(facts_app: Any, llm: FakeOpenAI) -> None:
    app, _, _ = await facts_app()
    await app.chain.handle(group("我住在杭州", mid="1"))
    await app.chain.handle(group("赫萝，你好", mid="2"))
    await app.background.drain()
    llm.responder = lambda body: Script(text='[{"op": "delete", "id": 7}, {"op": "update", "id": 1, "fact": "' + "x" * 300 + '"}]') if is_background(body) else None
    await app.chain.handle(group("今天天气不错", mid="3"))
    await app.chain.handle(group("赫萝，出去走走吗", mid="4"))
    await app.background.drain()
    book_ = await app.store.fact_book("horo", "test", "u1")
    assert [f.text for f in book_.facts] == ["住在杭州"] and book_.noted["group:g1"] == 5  # read up to the newest message


async def test_what_a_member_said_is_learnt_even_when_the_reply_was_unusable(facts_app: Any, llm: FakeOpenAI) -> None:
    """A small model's broken reply is replaced by a line of the card, but the server is up: facts are still read."""
    app, _, model = await facts_app()
    llm.default = Script(text="；" * 40)  # every reply broken, twice
    await app.chain.handle(group("我住在杭州", mid="1"))
    reply = await app.chain.handle(group("赫萝，你好", mid="2"))
    await app.background.drain()
    assert reply is not None and reply.mode == "fallback"
    assert await app.store.facts("horo", "test", "u1") == ["住在杭州"] and len(model.prompts) == 1
    llm.default = Script(status=500, error="down")  # a dead server is not asked for facts
    await app.chain.handle(group("我养了一只狗", mid="3"))
    await app.chain.handle(group("赫萝，在吗", mid="4"))
    await app.background.drain()
    assert len(model.prompts) == 1 and await app.store.facts("horo", "test", "u1") == ["住在杭州"]


async def test_what_a_member_said_before_the_window_is_still_read(facts_app: Any, llm: FakeOpenAI) -> None:
    """A member's remark that scrolled out of the window under others' chatter is read from the archive."""
    app, _, model = await facts_app(max_turns=10, group_context_turns=4)
    await app.chain.handle(group("我住在杭州", mid="1"))
    for i in range(40):
        await app.chain.handle(group(f"今天天气不错{i}", uid=f"u{i % 3 + 2}", name="路人", mid=f"c{i}"))
    await app.chain.handle(group("赫萝，你好", mid="2"))
    await app.background.drain()
    assert await app.store.facts("horo", "test", "u1") == ["住在杭州"]
    assert "今天天气不错" not in model.prompts[-1]  # only the member's own words are read
