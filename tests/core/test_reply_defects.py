"""Broken model replies (loops, runs of one mark, the wrong language, overruns) are never shown.

A real App against the local OpenAI-compatible server: the reply keeps its clean whole sentences,
else the model is asked once more with steadier sampling, else the character answers with its own
line. Every outcome is counted and logged with the conversation, never with the text.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from bot.app import App
from bot.checks.defects import DefectScan, known_words
from bot.checks.hygiene import Hidden, ReplyCheck
from core.llm import NO_CJK_GRAMMAR
from core.messages import Incoming
from persona.library import PersonaLibrary
from tests.conftest import ROOT, MakeSettings
from tests.core.test_metrics import moved, scrape
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder
from tests.support.ports import free_port
from tests.support.requests import replies
from tests.support.texts import varied_chinese

LOOP = "咱今天想吃苹果了，" * 12
RUN = "哼，汝这家伙" + "；" * 30
ENGLISH = "The wolf is very happy today and she wants to eat apples with the merchant on the road north."


def dm(text: str, uid: str = "u1") -> Incoming:
    return Incoming("test", "dm-" + uid, uid, "Alice", text, is_direct=True)


def group(text: str) -> Incoming:
    return Incoming("test", "g1", "u1", "Alice", text)


async def open_app(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, **llm_extra: Any) -> tuple[App, int]:
    port = free_port()
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "test-model", "server": "llamacpp", **llm_extra},
        memory={"summary": False, "facts": False, "warm_after_reply": False},  # each request here is a scripted reply
        metrics={"enabled": True, "port": port},
    )
    return await app_factory(settings), port


async def ask(app: App, msg: Incoming) -> tuple[Any, str]:
    shown: list[str] = []

    async def sink(delta: str) -> None:
        shown.append(delta)

    reply = await app.chain.handle(msg, Recorder(partial=sink))
    return reply, "".join(shown)


def broken(text: str) -> str | None:
    """The kind of defect in a shown text, as the bot's own scan finds it (None: clean)."""
    scan = DefectScan("zh", 10_000, known_words(["赫萝", "Holo", "Horo", "Alice"]))
    found = scan.scan(text, final=True)
    return found.kind if found else None


@pytest.mark.parametrize(("said", "kind", "kept"), [
    ("呵呵，汝来了。" + LOOP, "loop", "呵呵，汝来了。咱今天想吃苹果了，"),
    ("唔，汝说得对。苹果很甜。" + RUN, "symbols", "唔，汝说得对。苹果很甜。"),
    ("唔，汝说得对。" + ENGLISH, "language", "唔，汝说得对。"),
    ("唔，汝说得对。那就两三句话即可。", "prompt", "唔，汝说得对。"),  # the length hint, copied
], ids=["loop", "symbols", "language", "hint"])
async def test_the_clean_sentences_before_a_defect_are_kept(
    said: str, kind: str, kept: str, make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, port = await open_app(make_settings, app_factory, llm)
    before = scrape(port)
    caplog.set_level(logging.INFO)
    llm.push(Script(text=said, chunk_size=3))
    reply, shown = await ask(app, dm("你好"))
    assert reply is not None and reply.mode == "model"
    assert reply.text.startswith(kept[: kept.index("。") + 1]) and broken(reply.text) is None
    assert shown == reply.text and len(replies(llm.requests)) == 1  # nothing broken ever reached the sink
    after = scrape(port)
    assert moved(before, after, f'bot_reply_defects_total{{kind="{kind}"}}') == 1
    assert moved(before, after, 'bot_reply_repairs_total{outcome="cut"}') == 1
    lines = [r.getMessage() for r in caplog.records if "defect" in r.getMessage()]
    assert lines == [f"test:dm:u1: model reply had a {kind} defect; kept its clean sentences"]
    assert all(said[-20:] not in r.getMessage() for r in caplog.records)  # never the text


async def test_a_broken_reply_is_asked_again_with_steadier_sampling(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, port = await open_app(make_settings, app_factory, llm, temperature=0.9, repetition_penalty=1.05)
    before = scrape(port)
    llm.push(Script(text=LOOP, chunk_size=3), Script(text="呵呵，汝倒是会挑时候来。"))
    reply, shown = await ask(app, dm("你好"))
    assert reply is not None and reply.mode == "model" and reply.text == shown == "呵呵，汝倒是会挑时候来。"
    first, second = replies(llm.requests)
    assert (first["temperature"], first["repeat_penalty"]) == (0.9, 1.05)
    assert (second["temperature"], second["repeat_penalty"]) == (0.3, 1.3)  # llama.cpp's own field name
    assert "repetition_penalty" not in second
    assert moved(before, scrape(port), 'bot_reply_repairs_total{outcome="retried"}') == 1


async def test_twice_broken_becomes_the_characters_own_line(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, port = await open_app(make_settings, app_factory, llm)
    before = scrape(port)
    llm.push(Script(text=ENGLISH, chunk_size=5), Script(text="；" * 40))
    reply, shown = await ask(app, dm("你好"))
    assert reply is not None and reply.mode == "fallback" and shown == reply.text
    examples = [app.personas.get("horo").render(e.char, "Alice") for e in app.personas.get("horo").examples()]
    assert reply.text in examples and broken(shown) is None
    after = scrape(port)
    assert moved(before, after, 'bot_reply_defects_total{kind="language"}') == 1
    assert moved(before, after, 'bot_reply_defects_total{kind="symbols"}') == 1
    assert moved(before, after, 'bot_reply_repairs_total{outcome="offline"}') == 1


async def test_a_kept_part_in_the_other_language_is_not_kept(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, port = await open_app(make_settings, app_factory, llm)
    before = scrape(port)
    llm.push(Script(text="保持叶、猫？" + "；" * 12), Script(text="Good night, and mind the cold."))
    reply, shown = await ask(app, dm("Alright, get some rest. Good night."))
    assert reply is not None and reply.mode == "model" and reply.text == shown == "Good night, and mind the cold."
    assert moved(before, scrape(port), 'bot_reply_repairs_total{outcome="retried"}') == 1


async def test_names_code_and_the_users_own_words_are_not_the_wrong_language(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, _ = await open_app(make_settings, app_factory, llm)
    said = "呵呵，Holo 就是咱。汝说的 Python 咱可不懂，`print(apple)` 这种咒语也不懂。"
    llm.push(Script(text=said))
    reply, _ = await ask(app, dm("你会写 Python 吗"))
    assert reply is not None and reply.mode == "model" and reply.text == said
    llm.push(Script(text="Apples and wine, and a warm place to sleep. That is all a wolf needs."))
    reply, _ = await ask(app, dm("What do you like most in the whole world?"))  # an English chat stays English
    assert reply is not None and reply.mode == "model" and reply.text.startswith("Apples and wine")


async def test_the_card_sizes_replies_for_groups_and_private_chats(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, port = await open_app(make_settings, app_factory, llm)
    size = app.personas.get("horo").card.reply_size
    assert size.group.max < size.private.max
    long = varied_chinese(2_000, seed=3)
    llm.push(Script(text=long, chunk_size=7), Script(text=long, chunk_size=7))
    before = scrape(port)  # the counters are the process's: earlier tests may have moved them
    private, _ = await ask(app, dm("讲个故事"))
    in_group, _ = await ask(app, group("赫萝，讲个故事"))
    for reply, most in ((private, size.private.max), (in_group, size.group.max)):
        assert reply is not None and reply.mode == "model"
        assert most // 2 < len(reply.text) <= most and reply.text.endswith("。")  # cut at a sentence end
    first, second = replies(llm.requests)
    assert first["max_tokens"] > second["max_tokens"]  # the reply cap follows the card, too
    hints = [body["messages"][-1]["content"] for body in (first, second)]  # Horo: 60 in private, 40 in groups
    assert hints[0].endswith("（两三句话即可。）") and hints[1].endswith("（一两句话即可。）")
    assert moved(before, scrape(port), 'bot_reply_defects_total{kind="overrun"}') == 2


async def test_an_english_chat_with_a_chinese_card_has_room_to_say_as_much(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    """The card's sizes count Chinese characters: in English the same reply takes about three times the letters."""
    app, _ = await open_app(make_settings, app_factory, llm)
    said = ("Apples, of course, the red ones that crunch when you bite them. A wolf who has slept through "
            "a hundred harvests knows good fruit when she smells it. Bring me a sack of those and some wine "
            "from the south, and I might even let you brush my tail tonight, if you ask nicely enough.")
    assert len(said) > app.personas.get("horo").card.reply_size.private.max
    llm.push(Script(text=said, chunk_size=5))
    reply, shown = await ask(app, dm("What is your favourite food?"))
    assert reply is not None and reply.mode == "model" and reply.text == shown == said
    assert replies(llm.requests)[-1]["messages"][-1]["content"].endswith("(Reply in English, two or three sentences.)")


@pytest.mark.parametrize("grammar", [True, False])
async def test_an_english_reply_of_a_chinese_card_keeps_to_latin_script_on_llamacpp(
    grammar: bool, make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    app, _ = await open_app(make_settings, app_factory, llm, script_grammar=grammar)
    llm.push(Script(text="Apples, always apples."), Script(text="呵呵，苹果。"))
    await ask(app, dm("What is your favourite food?"))
    await ask(app, dm("你最喜欢吃什么？"))
    english, chinese = replies(llm.requests)
    assert english.get("grammar") == (NO_CJK_GRAMMAR if grammar else None) and "grammar" not in chinese


@pytest.mark.parametrize(("text", "at"), [
    ("Hello there! (Reply in English, one sentence.)", 13),
    ("Good wine. (Not in English, one or two sentences.)", 11),
    ("Apples. (Reply in Italian, two or three sentences.)", 8),
    ("呵呵，汝说得对。（两三句话。）", 8),
    ("(Lemon, 2 sentences.)\nThis is a simple answer.", 0),
    ("It was one sentence too long, he said. Two sentences (or three) then.", None),
])
def test_a_copied_length_hint_is_caught_in_its_variants(text: str, at: int | None) -> None:
    found = DefectScan("zh" if "呵" in text else "en", 1000).scan(text, final=True)
    assert (found.kind, found.at) == ("prompt", at) if at is not None else found is None


@pytest.mark.parametrize(("language", "text", "wrong"), [
    ("en", "保持叶？", True), ("en", "I'm 赫萝, and you?", False), ("en", "嗯", False),
    ("zh", "Hello there!", True), ("zh", "嗯，OK。", False), ("zh", "Holo 就是咱。", False),
])
def test_a_short_reply_in_the_other_language_is_caught_and_a_name_is_not(language: str, text: str, wrong: bool) -> None:
    scan = DefectScan(language, 1000, known_words(["赫萝", "Holo", "Alice"]))
    assert (scan.scan(text, final=True) is not None) is wrong


def test_the_check_stays_linear_and_cheap() -> None:
    """A 16 kB looping or clean reply in small pieces: the check's whole cost grows with the length."""
    horo = PersonaLibrary([ROOT / "persona"]).get("horo")
    hidden = Hidden(horo)

    def cost(text: str) -> float:
        check = ReplyCheck(horo, hidden, "你好", ["Alice"], DefectScan("zh", 100_000))
        started = time.perf_counter()
        for i in range(0, len(text), 3):
            if check.stopped:
                break
            check.feed(text[i : i + 3])
        check.finish()
        check.result()
        return time.perf_counter() - started

    def best(text: str) -> float:  # the least of three: other work on the machine only adds time
        return min(cost(text) for _ in range(3))

    short, long = varied_chinese(2_000, seed=5), varied_chinese(16_000, seed=5)
    assert best(long) < 8 * 3 * max(best(short), 1e-3)  # 8x the text: well under 24x the time
    assert best("呵呵。" + "咱" * 16_000) < best(short)  # a loop stops the stream early


def test_a_leak_deep_in_a_long_reply_is_still_caught() -> None:
    """Each check reads only the new text and a little before it: a leak across that seam is found."""
    horo = PersonaLibrary([ROOT / "persona"]).get("horo")
    check = ReplyCheck(horo, Hidden(horo), "你好", ["Alice"], DefectScan("zh", 100_000))
    text = varied_chinese(500, seed=7) + "保持赫萝的身份与口吻，简短回复，不要跳出角色。" + varied_chinese(100, seed=8)
    for i in range(0, len(text), 3):
        check.feed(text[i : i + 3])
    check.finish()
    assert check.leaked and "身份与口吻" not in check.result()
