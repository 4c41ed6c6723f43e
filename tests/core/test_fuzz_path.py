"""10,000 generated messages through the whole message path: nothing escapes, nothing unsafe is posted."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App
from core.messages import Attachment, Incoming, Reply
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder

MESSAGES = 10_000
# posted text may hold none of these (the ZWSP that defuses @everyone is deliberate, so it is allowed)
UNSAFE = re.compile(
    "[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f\u034f\u200e\u200f\u202a-\u202e\u2060-\u2069\ufeff"
    "\U000e0000-\U000e007f]"
)
LIVE_MASS = re.compile(r"@(everyone|here|全体成员|all)", re.I)  # not defused by a ZWSP after the @
NASTY = [
    "\ud83d", "\ude00", "\udbff", "\x00", "\x1b", "\x07", "\x85", "\x9b", "\u202e", "\u202d", "\u2066", "\u2069",
    "\U000e0001", "\U000e0041", "\U000e007f", "\u034f", "\u200b", "\u200d", "\ufeff", "\u3164", "\ufe0f", "\r",
]
WORDS = ["赫萝", "Horo", "@everyone", "@here僫", "@全体成员开会了", "[CQ:at,qq=all]", "苹果", "\n\n\n", "赫萝：", "Alice:"]
CHARS = st.one_of(
    st.characters(codec=None, exclude_categories=()),  # any code point, surrogates included
    st.sampled_from(NASTY),
)
TEXT = st.lists(st.one_of(st.text(CHARS, max_size=6), st.sampled_from(WORDS)), max_size=8).map("".join)
PICTURE = Attachment("image", "https://cdn.example/a.png", "a.png")
VOICE = Attachment("voice", "https://cdn.example/v.ogg", "v.ogg")

MESSAGE = st.builds(
    Incoming,
    platform=st.sampled_from(["discord", "qq", "test", "terminal"]),
    channel_id=st.sampled_from(["g1", "g2", "private"]),
    user_id=st.integers(0, 150).map(str),
    display_name=TEXT,
    text=TEXT,
    message_id=st.one_of(st.just(""), st.integers(0, 30_000).map(str)),
    is_direct=st.booleans(),
    mentions_bot=st.booleans(),
    reply_to_bot=st.booleans(),
    author_is_bot=st.sampled_from([False] * 9 + [True]),
    attachments=st.lists(st.sampled_from([PICTURE, VOICE]), max_size=2).map(tuple),
)


class Posted:
    """A running App and everything it posted for the current message."""

    def __init__(self, runner: asyncio.Runner, app: App):
        self.runner = runner
        self.app = app
        self.out: list[str] = []
        self.failed: list[str] = []  # messages the chain could not handle (it answers those with "a moment")

    def handle(self, msg: Incoming) -> Reply | None:
        """Run one message through Chain.handle, collecting the streamed deltas and the posted reply."""
        self.out.clear()

        async def sink(delta: str) -> None:
            self.out.append(delta)

        async def send(reply: Reply) -> None:
            self.out.append(reply.text)

        return self.runner.run(self.app.chain.handle(msg, Recorder(send, sink)))


@pytest.fixture
def posted(make_settings: MakeSettings, llm: FakeOpenAI) -> Iterator[Posted]:
    """The App built by bot/app.py (SQLite memory), its model the local server echoing what it is told."""

    def mirror(body: dict[str, Any]) -> Script:
        # the user's characters, whatever got through, reversed: a reply, not an echo the bot would refuse
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        return Script(text=str(users[-1])[::-1] + " 嗯。" if users else "嗯。", chunk_size=64)

    llm.responder = mirror
    cfg = make_settings(
        llm={"base_url": llm.base_url, "model": "test-model", "retry_after": 0},
        memory={"summary": False, "facts": False},
        bot={"rate_limit_per_minute": 40, "reply_chance": 0.05, "reply_cooldown_seconds": 0, "answer_bots": True},
    )
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        app = runner.run(stack.enter_async_context(App.open(cfg)))
        result = Posted(runner, app)

        class Failures(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "could not be handled" in record.getMessage():
                    result.failed.append(record.getMessage())

        handler = Failures(logging.WARNING)
        logging.getLogger("bot.pipeline.chain").addHandler(handler)
        try:
            yield result
        finally:
            logging.getLogger("bot.pipeline.chain").removeHandler(handler)
            runner.run(stack.aclose())


@pytest.mark.slow  # minutes: `make test` runs it, `make check` does not
@settings(
    max_examples=MESSAGES, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(msg=MESSAGE)
def test_generated_messages_never_escape_and_never_post_unsafe_text(posted: Posted, msg: Incoming) -> None:
    posted.handle(msg)  # an exception here fails the test with the message that caused it
    assert not posted.failed, posted.failed  # nor may the chain have swallowed one
    for text in posted.out:
        assert not UNSAFE.search(text), ascii(text)
        assert not LIVE_MASS.search(text), ascii(text)
        text.encode("utf-8")
