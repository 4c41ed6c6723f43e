"""The fetch policy: what a message may make the bot download, read, or hand to the model server.

Every server here is real and listens on 127.0.0.1, which the policy refuses by default: each test
shows the refusal, and the same fetch allowed once the operator's list names the host.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App
from core.config import ConfigError, LLMConfig, load_config
from core.fetch import Fetcher, FetchError, FetchPolicy
from core.images import Image, ImageGate
from core.messages import Attachment, Incoming
from persona.lines import NOT_HEARD
from tests.conftest import MakeSettings
from tests.core.test_vision_parts import PNG
from tests.support.media_server import MediaServer, certificate
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.stt_server import FakeTranscriber
from tests.voice.test_hearing import wav

PUBLIC = "https://8.8.8.8/cat.png"  # a public address: a hand-off check resolves, it never connects


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        server.files["/cat.png"] = PNG
        yield server


async def refused(fetcher: Fetcher, ref: str, max_bytes: int = 100_000) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.get(ref, max_bytes)
    return caught.value


async def test_a_local_server_is_refused_by_default_and_reached_when_listed(media: MediaServer) -> None:
    plain = Fetcher()
    error = await refused(plain, f"{media.url}/cat.png")
    assert error.reason == "refused" and "127.0.0.1 is a loopback address" in str(error)
    assert "[fetch] allow_hosts" in str(error) and media.requests == []  # never connected
    for listed in ("127.0.0.1", "127.0.0.0/8"):
        allowed = Fetcher(FetchPolicy.allowing(listed))
        assert await allowed.get(f"{media.url}/cat.png", 100_000) == PNG
        await allowed.close()
    assert len(media.requests) == 2
    await plain.close()


async def test_a_name_that_resolves_to_a_private_address_is_refused(media: MediaServer) -> None:
    port = media.url.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/cat.png"
    plain = Fetcher()
    error = await refused(plain, url)
    assert error.reason == "refused" and "localhost (127.0.0.1) is a loopback address" in str(error)
    by_name = Fetcher(FetchPolicy.allowing("LocalHost."))
    assert await by_name.get(url, 100_000) == PNG
    # the connection went to the checked address; the server still sees the name asked for
    assert media.requests == [("/cat.png", f"localhost:{port}")]
    for ref in ("http://[::1]/x", "http://2130706433/x", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/x"):
        assert (await refused(plain, ref)).reason == "refused", ref
    await plain.close()
    await by_name.close()


async def test_https_to_the_checked_address_still_verifies_the_name(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path, "localhost")
    with MediaServer(tls=(cert, key)) as media:
        media.files["/cat.png"] = PNG
        port = media.url.rsplit(":", 1)[1]
        trusting = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(cert)))
        fetcher = Fetcher(FetchPolicy.allowing("localhost", "127.0.0.1"), trusting)
        # connected to 127.0.0.1, the address checked; TLS asked for and verified the name
        assert await fetcher.get(f"https://localhost:{port}/cat.png", 100_000) == PNG
        assert media.server_names == ["localhost"] and media.requests == [("/cat.png", f"localhost:{port}")]
        by_address = await refused(fetcher, f"https://127.0.0.1:{port}/cat.png")  # the certificate names no address
        assert by_address.reason == "unreachable" and "ConnectError" in str(by_address)
        await fetcher.close()


async def test_every_redirect_is_checked_again(media: MediaServer) -> None:
    with MediaServer("127.0.0.2") as inner:
        inner.files["/secret"] = b"internal"
        media.redirects.update({
            "/to-inner": f"{inner.url}/secret",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-file": "file:///etc/passwd",
            "/to-cat": "/cat.png",
        })
        outer_only = Fetcher(FetchPolicy.allowing("127.0.0.1"))
        error = await refused(outer_only, f"{media.url}/to-inner")
        assert error.reason == "refused" and "127.0.0.2 is a loopback address" in str(error)
        assert inner.requests == []
        metadata = await refused(outer_only, f"{media.url}/to-metadata")
        assert metadata.reason == "refused" and "cloud metadata" in str(metadata)
        assert (await refused(outer_only, f"{media.url}/to-file")).reason == "bad_url"
        assert await outer_only.get(f"{media.url}/to-cat", 100_000) == PNG  # an allowed hop is followed
        both = Fetcher(FetchPolicy.allowing("127.0.0.1", "127.0.0.2"))
        assert await both.get(f"{media.url}/to-inner", 100_000) == b"internal"  # the policy refused it, not the network
        await outer_only.close()
        await both.close()


async def test_a_redirect_loop_and_too_many_redirects(media: MediaServer) -> None:
    media.redirects.update({"/loop": "/loop", "/r1": "/cat.png", "/r2": "/r1", "/r3": "/r2", "/r4": "/r3"})
    fetcher = Fetcher(FetchPolicy.allowing("127.0.0.1"))
    loop = await refused(fetcher, f"{media.url}/loop")
    assert loop.reason == "unreachable" and "more than 3 redirects" in str(loop)
    assert [path for path, _ in media.requests] == ["/loop"] * 4
    assert await fetcher.get(f"{media.url}/r3", 100_000) == PNG  # three hops are fine
    assert (await refused(fetcher, f"{media.url}/r4")).reason == "unreachable"
    await fetcher.close()


async def test_a_slow_sender_is_cut_at_the_deadline(media: MediaServer) -> None:
    media.drip_every = 0.2  # every byte arrives well inside any per-read timeout
    fetcher = Fetcher(FetchPolicy.allowing("127.0.0.1", deadline=1.0))
    start = time.monotonic()
    error = await refused(fetcher, f"{media.url}/drip")
    elapsed = time.monotonic() - start
    assert error.reason == "too_slow" and "[fetch] deadline" in str(error)
    print(f"slow sender cut after {elapsed:.2f} s")
    assert 1.0 <= elapsed < 1.6, elapsed
    await fetcher.close()


async def test_local_files_only_inside_the_listed_folders(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "napcat" / "media", tmp_path / "private"
    folder.mkdir(parents=True)
    elsewhere.mkdir()
    (folder / "clip.silk").write_bytes(b"#!SILK_V3 clip")
    (elsewhere / "secret.txt").write_text("password")
    (folder / "link.silk").symlink_to(elsewhere / "secret.txt")
    os.mkfifo(folder / "pipe.silk")  # reading it would wait for a writer forever
    clip = folder / "clip.silk"

    plain = Fetcher(FetchPolicy(deadline=2.0))
    for ref in (f"file://{clip}", str(clip), "file:///etc/passwd", "/etc/passwd", "/proc/self/environ"):
        error = await refused(plain, ref)
        assert error.reason == "refused" and "[fetch] allow_dirs" in str(error), ref
    listed = Fetcher(FetchPolicy.allowing(dirs=[folder], deadline=2.0))
    assert await listed.get(f"file://{clip}", 1000) == await listed.get(str(clip), 1000) == b"#!SILK_V3 clip"
    for ref in ("file:///etc/passwd", "/proc/self/environ", str(elsewhere / "secret.txt"),
                f"{folder}/../../private/secret.txt", str(folder / "link.silk"), str(folder / "pipe.silk")):
        assert (await refused(listed, ref)).reason == "refused", ref
    assert (await refused(listed, str(clip), max_bytes=4)).reason == "too_large"
    assert (await refused(listed, "clip.silk")).reason == "bad_url"  # a bare name says nothing about where
    assert (await refused(listed, f"file://otherhost{clip}")).reason == "bad_url"
    await plain.close()
    await listed.close()


def test_the_config_lists_hosts_and_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text('[fetch]\nallow_hosts = ["127.0.0.1", "Media.Example.COM.", "10.0.0.0/8"]\n'
                    'allow_dirs = ["napcat"]\ndeadline = 5.0\n', encoding="utf-8")
    cfg = load_config(path).fetch
    assert cfg.allow_hosts == ["127.0.0.1/32", "media.example.com", "10.0.0.0/8"]
    assert cfg.allow_dirs == [tmp_path / "napcat"] and cfg.deadline == 5.0
    policy = FetchPolicy.configured(cfg)
    assert policy.allow_hosts == {"media.example.com"} and len(policy.allow_nets) == 2
    path.write_text('[fetch]\nallow_hosts = ["http://127.0.0.1:3000"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[fetch\] allow_hosts.*'http://127.0.0.1:3000' is not a host name"):
        load_config(path)


# --- URLs handed to the model server (inline_images = false) ----------------------------------------


async def test_picture_urls_are_checked_before_the_model_server_gets_them(media: MediaServer) -> None:
    gate = ImageGate(LLMConfig(max_images=9))
    local = f"{media.url}/cat.png"
    prepared = await gate.prepare([
        Image(url=local), Image(url="http://169.254.169.254/latest/meta-data/iam"),
        Image(url=local.replace("127.0.0.1", "localhost")), Image(url="file:///etc/passwd"),
        Image(url="http://picture.invalid/cat.png"), Image(url=PUBLIC),
    ])
    assert [i.url for i in prepared.images] == [PUBLIC]
    assert [r.reason for r in prepared.rejected] == ["refused", "refused", "refused", "refused", "unreachable"]
    assert "cloud metadata" in prepared.rejected[1].detail and "does not resolve" in prepared.rejected[4].detail
    assert media.requests == []  # a hand-off check never downloads
    await gate.close()
    allowed = ImageGate(LLMConfig(), FetchPolicy.allowing("127.0.0.1", "picture.invalid"))
    listed = await allowed.prepare([Image(url=local), Image(url="http://picture.invalid/cat.png")])
    assert [i.url for i in listed.images] == [local, "http://picture.invalid/cat.png"]  # a listed name goes unresolved
    assert media.requests == []  # handed on, not fetched: the model server fetches it
    await allowed.close()


def llm_cfg(srv: FakeOpenAI, **kw: Any) -> dict[str, Any]:
    return {"base_url": srv.base_url, "model": "test-model", "retry_after": 0, **kw}


def at_bot(text: str, message_id: str, *attachments: Attachment) -> Incoming:
    return Incoming("test", "g1", "u1", "Alice", text, message_id=message_id, mentions_bot=True, attachments=attachments)


async def test_the_model_server_never_gets_a_refused_picture_url(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, media: MediaServer
) -> None:
    app: App = await app_factory(make_settings(llm=llm_cfg(llm, vision=True)))
    llm.push(Script(text="嗯？"), Script(text="好猫。"))
    metadata = Attachment("image", "http://169.254.169.254/latest/meta-data/", "a.png")
    assert await app.chain.handle(at_bot("看", "p1", metadata, Attachment("image", f"{media.url}/cat.png"))) is not None
    assert llm.images == [] and all(isinstance(m["content"], str) for m in llm.requests[-1]["messages"])
    assert await app.chain.handle(at_bot("再看", "p2", Attachment("image", PUBLIC))) is not None
    assert llm.images == [PUBLIC]


async def test_a_voice_message_naming_a_local_file_is_not_read(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, tmp_path: Path
) -> None:
    folder, private = tmp_path / "media", tmp_path / "private"
    folder.mkdir()
    private.mkdir()
    (folder / "clip.wav").write_bytes(wav(0.5))
    (private / "meeting.wav").write_bytes(wav(0.7))  # audio, so a transcription server would take it
    (folder / "link.wav").symlink_to(private / "meeting.wav")
    forged = ("file:///etc/passwd", "/proc/self/environ", f"file://{private}/meeting.wav", str(private / "meeting.wav"),
              f"file://{folder}/../private/meeting.wav", str(folder / "link.wav"))
    with FakeTranscriber(text="苹果呢") as stt:
        app: App = await app_factory(make_settings(llm=llm_cfg(llm), voice={"stt_url": stt.url},
                                                   fetch={"allow_dirs": [str(folder)]}))
        for i, ref in enumerate(forged):
            reply = await app.chain.handle(at_bot("", f"v{i}", Attachment("voice", ref)))
            assert reply is not None and reply.text in NOT_HEARD["zh"], ref
        assert stt.uploads == [] and llm.requests == []  # nothing outside the listed folder was read or sent
        llm.push(Script(text="在这儿。"))
        heard = await app.chain.handle(at_bot("", "v9", Attachment("voice", f"file://{folder}/clip.wav")))
        assert heard is not None and heard.text == "在这儿。" and [u.data for u in stt.uploads] == [wav(0.5)]


async def test_a_slow_voice_download_holds_its_conversation_no_longer_than_the_deadline(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, media: MediaServer
) -> None:
    with FakeTranscriber(text="苹果呢") as stt:
        app: App = await app_factory(make_settings(
            llm=llm_cfg(llm), voice={"stt_url": stt.url}, bot={"merge_bursts": False},
            fetch={"allow_hosts": ["127.0.0.1"], "deadline": 1.0}))
        llm.push(Script(text="还在。"))
        start = time.monotonic()
        voice = asyncio.create_task(app.chain.handle(at_bot("", "s1", Attachment("voice", f"{media.url}/drip"))))
        await asyncio.sleep(0.05)
        typed = await app.chain.handle(at_bot("还在吗", "s2"))
        elapsed = time.monotonic() - start
        canned = await voice
    assert canned is not None and canned.text in NOT_HEARD["zh"] and stt.uploads == []
    assert typed is not None and typed.text == "还在。"
    print(f"typed message answered after {elapsed:.2f} s")
    assert 1.0 <= elapsed < 2.0, elapsed  # it waited for the voice message: the deadline (1 s), not the sender's pace
