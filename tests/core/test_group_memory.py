"""Memory of a group's talk (tests/support/group_talk.json): dated, by member, by time range, within budget.

The conversation is overheard (unaddressed messages with their platform times), then a member new
to the group asks about it; what reached the model is read from the local OpenAI-compatible server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, Clocks
from core.messages import Incoming
from core.serving import ServerProfile
from memory.age import day_of
from memory.episode_index import EpisodeIndex
from memory.episodes import EpisodicMemory
from memory.recollections import render
from memory.timeframe import frame
from memory.turns import SessionKey, Turn
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import replies

TALK = json.loads((Path(__file__).resolve().parents[1] / "support" / "group_talk.json").read_text(encoding="utf-8"))
FILLER = 40  # turns said after the talk, so that it has left the window


def lines() -> list[tuple[str, str, str, float]]:
    """(id, member, text, time) of every turn, then the filler after them."""
    out = []
    for session in TALK["sessions"]:
        start = datetime.fromisoformat(session["date"]).timestamp()
        out += [(ident, uid, text, start + 60 * i) for i, (ident, uid, text) in enumerate(session["turns"])]
    last = out[-1][3]
    out += [(f"f:{i}", f"u{i % 3 + 1}", f"{TALK['filler'][i % len(TALK['filler'])]} ({i})", last + 600 * (i + 1))
            for i in range(FILLER)]
    return out


def question(ident: str) -> dict[str, Any]:
    return next(q for q in TALK["questions"] if q["id"] == ident)


def evidence(ident: str) -> list[str]:
    said = {i: text for i, _, text, _ in lines()}
    return [said[e] for e in question(ident)["evidence"]]


def said(text: str, uid: str, mid: str, at: float, channel: str = "g1", direct: bool = False) -> Incoming:
    name = TALK["members"].get(uid, "Newcomer")
    return Incoming("test", channel, uid, name, text, message_id=mid, is_direct=direct, sent_at=at, persona="holo_en")


@pytest.fixture(params=["redis", "sqlite"])
async def talk_app(request: pytest.FixtureRequest, make_settings: MakeSettings, app_factory: Callable[..., Any],
                   llm: FakeOpenAI, redis_url: str, redis_prefix: str) -> Any:
    """An App on the store under test that overheard the group talk; its clock a day after it."""
    import tomli_w

    from bench.memory import HOLO_EN

    async def make(**memory: Any) -> App:
        cards = Path.cwd() / "cards"
        (cards / "holo_en").mkdir(parents=True, exist_ok=True)
        (cards / "holo_en" / "card.toml").write_text(tomli_w.dumps(HOLO_EN), encoding="utf-8")
        store = {"backend": request.param, "redis_url": redis_url, "key_prefix": redis_prefix}
        settings = make_settings(
            llm={"base_url": llm.base_url, "model": "test-model"}, knowledge={"enabled": False},
            memory={**store, "max_turns": 10, "group_context_turns": 4, "summary": False, "facts": False, **memory},
            personas={"dirs": [str(Path(__file__).resolve().parents[2] / "persona"), str(cards)]},
            bot={"rate_limit_per_minute": 100_000, "default_persona": "holo_en"})
        talk = lines()
        now = [talk[-1][3] + 86_400]
        app: App = await app_factory(settings, clocks=Clocks(wall=lambda: now[0]))
        llm.default = Script(text="Hmm, let me think.")
        for n, (_, uid, text, at) in enumerate(talk):
            await app.chain.handle(said(text, uid, f"m{n}", at))
        return app

    return make


async def ask(app: App, llm: FakeOpenAI, text: str, mid: str, channel: str = "g1") -> str:
    """Every message of the prompt that answered `text`, asked by a newcomer with the character's name."""
    await app.chain.handle(said(f"Holo, {text}", "u9", mid, 0.0, channel))
    return "\n".join(str(m["content"]) for m in replies(llm.requests)[-1]["messages"])


async def test_a_when_question_gets_its_turn_with_its_date_and_speaker(talk_app: Any, llm: FakeOpenAI) -> None:
    app = await talk_app()
    prompt = await ask(app, llm, question("when")["ask"], "q1")
    adopted = datetime.fromisoformat(TALK["sessions"][0]["date"]).timestamp()
    assert f"> Lena: {evidence('when')[0]}" in prompt  # who said it
    assert f"> [{day_of(adopted, 'en')}, " in prompt  # and on which day


async def test_a_question_about_two_members_recalls_both(talk_app: Any, llm: FakeOpenAI) -> None:
    app = await talk_app()
    prompt = await ask(app, llm, question("both")["ask"], "q2")
    assert all(text in prompt for text in evidence("both"))


async def test_an_answer_is_found_by_the_words_of_what_it_answers(talk_app: Any, llm: FakeOpenAI) -> None:
    app = await talk_app()
    prompt = await ask(app, llm, question("answer")["ask"], "q3")
    assert f"> Kai: {evidence('answer')[0]}" in prompt  # "Twice a week..." holds no word of the question


async def test_memory_sections_keep_to_their_budget(talk_app: Any, llm: FakeOpenAI) -> None:
    app = await talk_app(memory_tokens=120)
    prompt = await ask(app, llm, "What did Lena, Omar and Kai say about cats, cooking, drums, climbing and the lake?", "q4")
    note = prompt.split("[Quoted from the chat]")[1].split("[End of quotes]")[0]
    body = note.split("\n", 1)[1]
    assert 0 < ServerProfile().count(body) <= 120 + 10  # the blocks, one token a quoted line aside


async def test_recalled_turns_fill_their_budget_as_the_prompt_shows_them(talk_app: Any, llm: FakeOpenAI) -> None:
    budget = 200
    app = await talk_app(recall_tokens=budget, profile_tokens=0)
    prompt = await ask(app, llm, "What did Lena, Omar and Kai say about cats, cooking, drums, climbing and the lake?", "q6")
    block = prompt.split("【What you remember from before】")[1].split("\n\n")[0]
    shown = ServerProfile().count(block)  # quoted ("> ") line by line, as the model reads it
    assert budget - 40 < shown <= budget  # all of it but a line's worth, never more


async def test_what_a_member_says_in_private_never_reaches_the_group(talk_app: Any, llm: FakeOpenAI) -> None:
    app = await talk_app(facts=True, share_facts=True)
    secret = "my salary is ninety thousand and I am quitting in June"
    await app.chain.handle(said(secret, "u2", "dm1", 0.0, channel="u2", direct=True))
    prompt = await ask(app, llm, "what did Omar say about his salary and quitting in June?", "q5")
    assert "ninety thousand" not in prompt


def index() -> tuple[EpisodeIndex, dict[str, Turn]]:
    idx = EpisodeIndex()
    turns = {ident: Turn("user", text, uid, TALK["members"][uid], False, at, seq=n + 1)
             for n, (ident, uid, text, at) in enumerate(lines())}
    idx.add(list(turns.values()))
    return idx, turns


async def test_a_month_in_the_question_steers_recall_to_it() -> None:
    idx, turns = index()
    memory = EpisodicMemory(None, keep_turns=1000)  # type: ignore[arg-type]  # search reads only the index
    now = max(t.at for t in turns.values()) + 86_400
    found = await memory.search(SessionKey("holo_en", "test", "group", "g1"), idx, question("range")["ask"], [],
                                visible=set(), now=now, language="en")
    cooked = [r.turn.text for r in found if "lasagna" in r.turn.text]
    assert cooked[0] == evidence("range")[0]  # May's, before March's
    assert frame("what happened last week?", now).ranged and frame("when did it start?", now).asks_when
    day = frame("What did Lena cook on May 11th, 2024?", now)  # a day: that day and the next, a day's slack before
    assert (day.start, day.end) == (datetime(2024, 5, 10).timestamp(), datetime(2024, 5, 13).timestamp())
    found = await memory.search(SessionKey("holo_en", "test", "group", "g1"), idx, "What did Lena cook on 11 May 2024?", [],
                                visible=set(), now=now, language="en")
    assert found[0].turn.text == evidence("range")[0]


def test_neighbours_come_only_when_they_fit() -> None:
    idx, turns = index()
    from memory.recollections import Recollection

    hit = turns["s2:2"]
    found = [Recollection(hit, *idx.around(hit.seq), "2 months ago", 1.0)]
    count = ServerProfile().count
    roomy, kept = render(found, 400, count, "Holo", "en")
    assert turns["s2:1"].text in roomy and turns["s2:3"].text in roomy and kept[0].before is not None
    head = count(day_of(hit.at, "en")) + count("2 months ago") + 4
    tight, kept = render(found, count(f"Kai: {hit.text}") + 1 + head + 5, count, "Holo", "en")
    assert hit.text in tight and turns["s2:1"].text not in tight and kept[0].before is None


async def test_before_and_after_look_next_to_the_turn_they_name() -> None:
    day = 86_400.0
    start = datetime.fromisoformat("2024-01-05T10:00:00").timestamp()
    said_then = [
        (0, "I moved to Lisbon for the new job"),
        (27, "Staying in a tiny flat in Porto for a while, the rent is a joke"),
        (55, "I flew to Chicago for the conference, what a skyline"),
        (80, "Back home and tired of airports"),
    ]
    turns = [Turn("user", text, "u7", "Mira", False, start + d * day, seq=n + 1) for n, (d, text) in enumerate(said_then)]
    turns += [Turn("user", f"{TALK['filler'][i % len(TALK['filler'])]} ({i})", "u8", "Ben", False, start + (i + 90) * day,
                   seq=len(said_then) + i + 1) for i in range(40)]
    idx = EpisodeIndex()
    idx.add(turns)
    memory = EpisodicMemory(None, keep_turns=1000)  # type: ignore[arg-type]  # search reads only the index
    key, now = SessionKey("holo_en", "test", "group", "g1"), start + 200 * day

    async def texts(question: str) -> list[str]:
        found = await memory.search(key, idx, question, [], visible=set(), now=now, language="en")
        return [r.turn.text for r in found]

    before = await texts("Which city was Mira in before she flew to Chicago?")
    assert said_then[1][1] in before and said_then[0][1] not in before  # the month before it, not earlier
    assert said_then[1][1] not in await texts("Which city was Mira in?")  # one word in common: no memory without the steer
    after = await texts("How did Mira feel after the conference in Chicago?")
    assert said_then[3][1] in after
