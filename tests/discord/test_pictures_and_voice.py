"""Pictures and voice messages sent to the character on Discord, through the real discord.py client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memory.turns import SessionKey
from tests.discord.fake_discord import BOT_USER, CHANNEL_ID, FakeDiscord
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.stt_server import FakeTranscriber

MENTION = f"<@{BOT_USER['id']}>"
OGG = b"OggS" + bytes(60)  # an Ogg page header is what the transcription server checks


class _Files(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/ogg")
        self.send_header("Content-Length", str(len(OGG)))
        self.end_headers()
        self.wfile.write(OGG)


@pytest.fixture
def cdn() -> Iterator[str]:
    """A local stand-in for Discord's CDN, serving one voice message."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def replies(fake: FakeDiscord) -> list[Any]:
    return fake.sent("POST", f"/channels/{CHANNEL_ID}/messages")


async def test_a_picture_with_a_mention_reaches_a_model_that_sees(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI
) -> None:
    # the operator lists Discord's CDN: a listed name is handed on unresolved (nothing resolves names here)
    app, _ = await connect(llm={"vision": True}, fetch={"allow_hosts": ["cdn.discordapp.com"]})
    llm.push(Script(text="好一匹狼。"))  # the card's language: a reply in another would be asked again
    url = "https://cdn.discordapp.com/attachments/1/2/wolf.png"
    picture = {"id": "77", "filename": "wolf.png", "size": 2048, "url": url, "proxy_url": url, "content_type": "image/png"}
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} look", mentions=[BOT_USER],
                                                                           attachments=[picture]))
    await discord_server.wait_for(lambda: replies(discord_server))
    assert llm.images == [url]
    turns = await app.store.recent(SessionKey("horo", "discord", "group", str(CHANNEL_ID)), 10)
    assert turns[0].text.startswith("[图片]") and "look" in turns[0].text


async def test_a_picture_over_the_size_limit_is_not_sent(connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI) -> None:
    await connect(llm={"vision": True, "max_image_bytes": 4096})
    llm.push(Script(text="Hm?"))
    url = "https://cdn.discordapp.com/attachments/1/2/big.png"
    big = {"id": "78", "filename": "big.png", "size": 10_000_000, "url": url, "proxy_url": url, "content_type": "image/png"}
    await discord_server.dispatch("MESSAGE_CREATE", discord_server.message(f"{MENTION} look", mentions=[BOT_USER],
                                                                           attachments=[big]))
    await discord_server.wait_for(lambda: replies(discord_server))
    assert llm.images == [] and all(isinstance(m["content"], str) for m in llm.requests[-1]["messages"])


async def test_a_voice_message_is_transcribed_and_answered(
    connect: Any, discord_server: FakeDiscord, llm: FakeOpenAI, cdn: str
) -> None:
    with FakeTranscriber(text="are you there") as stt:
        app, _ = await connect(voice={"stt_url": stt.url}, fetch={"allow_hosts": ["127.0.0.1"]})
        llm.push(Script(text="Right here."))
        clip = {"id": "79", "filename": "voice-message.ogg", "size": len(OGG), "url": f"{cdn}/voice.ogg",
                "proxy_url": f"{cdn}/voice.ogg", "content_type": "audio/ogg", "duration_secs": 1.0, "waveform": "AAAA"}
        msg = discord_server.message("", mentions=[BOT_USER], attachments=[clip], flags=8192)
        await discord_server.dispatch("MESSAGE_CREATE", msg)
        sent = await discord_server.wait_for(lambda: replies(discord_server))
        assert sent[0].body["content"] == "Right here."
        assert stt.uploads[-1].data == OGG and stt.uploads[-1].filename.endswith(".ogg")
    turns = await app.store.recent(SessionKey("horo", "discord", "group", str(CHANNEL_ID)), 10)
    assert turns[0].text == "（语音）are you there"
