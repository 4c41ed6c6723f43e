"""Human pacing through the real discord.py client: a reply as a few messages, each after a typing delay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.app import Clocks
from core.messages import Clip
from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, DM_ID, FakeDiscord
from tests.discord.test_voice import ToneVoice, tone
from tests.support.openai_server import FakeOpenAI, Script

MENTION = f"<@{BOT_USER['id']}>"
# 10 CJK characters a second, each delay held between 0.5 s and 2 s
PACING = {"enabled": True, "chars_per_second": 10.0, "min_delay_seconds": 0.5, "max_delay_seconds": 2.0,
          "split_over_chars": 10}
SHORT, MIDDLE, LONG = "嗯。", "咱今天去了镇上的集市。", "买了好多苹果，还有一小袋麦子，汝要不要尝尝看，味道可是相当不错的呢？"


class Waits:
    """The injected sleep: records each delay instead of waiting; can hold the first one."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if self.hold is not None and len(self.seconds) == 1:
            self.held.set()
            await self.hold.wait()


def posted(fake: FakeDiscord, channel: int = CHANNEL_ID) -> list[Any]:
    return fake.sent("POST", f"/channels/{channel}/messages")


def contents(fake: FakeDiscord, channel: int = CHANNEL_ID) -> list[str]:
    return [m.body.get("content", "") for m in posted(fake, channel)]


async def _open(connect: Any, llm: FakeOpenAI, *, generating: float = 0.0, **sections: Any) -> Waits:
    """Connect with a recording sleep and a clock the model server moves on by `generating` seconds."""
    now = [100.0]

    def answer(body: dict[str, Any]) -> None:
        now[0] += generating  # the time the model takes, on the bot's own clock
        return None

    llm.responder = answer
    waits = Waits()
    await connect(clocks=Clocks(mono=lambda: now[0], sleep=waits), pacing=sections.pop("pacing", PACING), **sections)
    return waits


async def _ask(fake: FakeDiscord, text: str = "讲讲今天", channel: int = CHANNEL_ID, **kw: Any) -> dict[str, Any]:
    msg = fake.message(f"{MENTION} {text}", mentions=[BOT_USER], channel_id=channel, **kw)
    await fake.dispatch("MESSAGE_CREATE", msg)
    return msg


async def test_three_sentences_arrive_as_three_messages_in_order_after_growing_clamped_delays(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text=SHORT + MIDDLE + LONG))
    waits = await _open(connect, llm)
    msg = await _ask(discord_server)
    sent = await discord_server.wait_for(lambda: len(posted(discord_server)) >= 3 and posted(discord_server))
    assert [m.body["content"] for m in sent] == [SHORT, MIDDLE, LONG]
    assert sent[0].body["message_reference"]["message_id"] == int(msg["id"])
    assert all("message_reference" not in m.body for m in sent[1:])
    # 2 characters → 0.2 s, held at the 0.5 s floor; 11 → 1.1 s; 35 → 3.5 s, held at the 2 s ceiling
    assert waits.seconds == pytest.approx([0.5, 1.1, 2.0])
    assert len(discord_server.sent("POST", "/typing")) >= 3, "typing shown again before each later part"


async def test_the_first_delay_counts_the_time_spent_generating(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text=MIDDLE + LONG))
    waits = await _open(connect, llm, generating=0.6)
    await _ask(discord_server)
    await discord_server.wait_for(lambda: len(posted(discord_server)) >= 2)
    assert waits.seconds == pytest.approx([0.5, 2.0])  # 1.1 s of typing, 0.6 s of it spent generating


async def test_a_slow_reply_is_not_delayed_again(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text=MIDDLE + LONG))
    waits = await _open(connect, llm, generating=4.0)
    await _ask(discord_server)
    await discord_server.wait_for(lambda: len(posted(discord_server)) >= 2)
    assert waits.seconds == pytest.approx([2.0])  # the first part goes at once, the second after its delay


async def test_a_short_reply_is_one_message(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text="嗯。咱在。"))
    waits = await _open(connect, llm)
    await _ask(discord_server)
    await discord_server.wait_for(lambda: posted(discord_server))
    await asyncio.sleep(0.1)
    assert contents(discord_server) == ["嗯。咱在。"]
    assert waits.seconds == pytest.approx([0.5])


async def test_code_fences_and_quotes_stay_whole(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    fence = "```py\nprint('一。二。')\nprint('三！')\n```"
    quote = "> 汝说过：苹果。麦子。"
    llm.push(Script(text=f"汝看这段代码，写得如何呢。\n{fence}\n{quote}\n他说：“走吧。别回头！”然后就走了。"))
    await _open(connect, llm)
    await _ask(discord_server)
    sent = await discord_server.wait_for(lambda: len(posted(discord_server)) >= 3 and contents(discord_server))
    assert len(sent) == 3
    assert any(fence in part for part in sent)
    assert any(quote in part for part in sent)
    assert any("他说：“走吧。别回头！”" in part for part in sent)


async def test_streamed_edits_turn_pacing_off(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text=SHORT + MIDDLE + LONG, chunk_size=4))
    waits = await _open(connect, llm, discord={"stream_edits": True})
    await _ask(discord_server)
    final = SHORT + MIDDLE + LONG
    await discord_server.wait_for(
        lambda: any(e.body.get("content") == final for e in discord_server.sent("PATCH"))
        or final in contents(discord_server)
    )
    await asyncio.sleep(0.1)
    assert len(posted(discord_server)) == 1
    assert waits.seconds == []


async def test_the_voice_clip_follows_the_last_part(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    llm.push(Script(text=SHORT + MIDDLE + LONG))
    await _open(connect, llm, tts=ToneVoice(Clip(tone(), "ogg", 0.5)), voice={"enabled": True})
    await _ask(discord_server)
    sent = await discord_server.wait_for(lambda: len(posted(discord_server)) >= 4 and posted(discord_server))
    assert [m.body.get("content") for m in sent[:3]] == [SHORT, MIDDLE, LONG]
    assert sent[3].body["flags"] == 8192 and sent[3].files  # the voice message comes last


async def test_a_paced_reply_does_not_hold_up_another_conversation(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    llm.push(Script(text=SHORT + MIDDLE + LONG), Script(text="汝好。"))
    waits = await _open(connect, llm)
    waits.hold = asyncio.Event()
    await _ask(discord_server)
    await asyncio.wait_for(waits.held.wait(), 5)  # the channel's reply is waiting out its first delay
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message("hello", channel_id=DM_ID, guild=False))
    await discord_server.wait_for(lambda: posted(discord_server, DM_ID))
    assert contents(discord_server, DM_ID) == ["汝好。"]
    assert posted(discord_server) == []
    waits.hold.set()
    await discord_server.wait_for(lambda: len(posted(discord_server)) >= 3)
    assert contents(discord_server) == [SHORT, MIDDLE, LONG]
