"""Pictures for the model: image content parts, vision detection per server kind, image limits."""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.config import ConfigError, LLMConfig, load_config
from core.fetch import FetchPolicy
from core.images import Image, ImageGate, sniff
from core.llm import ChatMessage, OpenAIChat, RequestRejected
from core.serving import MESSAGE_OVERHEAD, ServerProfile
from tests.support.openai_server import FakeOpenAI


def png(width: int = 1, height: int = 1) -> bytes:
    """A real (tiny, grey) PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L" + b"\x00" * 14
URL = "https://cdn.example.com/attachments/1/2/cat.png"


@pytest.fixture
def srv() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def client(srv: FakeOpenAI, **kw: Any) -> OpenAIChat:
    return OpenAIChat(LLMConfig(base_url=srv.base_url, model=kw.pop("model", "test-model"), **kw))


# --- the request body ----------------------------------------------------------------------------


async def test_without_images_the_body_is_byte_identical(srv: FakeOpenAI) -> None:
    chat = client(srv, vision=True)
    messages = [ChatMessage("system", "你是赫萝。"), ChatMessage("user", "苹果呢？")]
    body = chat.body(messages, 64, None)
    assert body["messages"] == [{"role": "system", "content": "你是赫萝。"}, {"role": "user", "content": "苹果呢？"}]
    plain = [{"role": m.role, "content": m.content} for m in messages]  # what the client sent before images
    assert json.dumps(body["messages"]) == json.dumps(plain)
    await chat.close()


async def test_images_become_list_content_with_data_and_passthrough_urls(srv: FakeOpenAI) -> None:
    chat = client(srv, vision=True)
    msg = ChatMessage("user", "看这只猫", images=(Image.of_bytes(PNG), Image(url=URL)))
    content = chat.body([ChatMessage("system", "s"), msg], 64, None)["messages"][1]["content"]
    assert content == [
        {"type": "text", "text": "看这只猫"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        {"type": "image_url", "image_url": {"url": URL}},
    ]
    picture_only = chat.body([ChatMessage("user", "", images=(Image(url=URL),))], 64, None)["messages"][0]
    assert picture_only["content"] == [{"type": "image_url", "image_url": {"url": URL}}]
    await chat.close()


async def test_a_server_that_cannot_see_gets_the_text_alone(srv: FakeOpenAI) -> None:
    chat = client(srv, vision=False)
    body = chat.body([ChatMessage("user", "看这只猫", images=(Image(url=URL),))], 64, None)
    assert body["messages"] == [{"role": "user", "content": "看这只猫"}]
    await chat.close()


async def test_the_server_receives_valid_image_parts(srv: FakeOpenAI) -> None:
    chat = client(srv, vision=True)
    images = (Image.of_bytes(JPEG), Image(url=URL))
    reply = await chat.complete([ChatMessage("user", "这是什么？", images=images)], max_tokens=8, temperature=0.1)
    assert reply == "OK"
    assert srv.images == ["data:image/jpeg;base64," + base64.b64encode(JPEG).decode(), URL]
    await chat.close()


async def test_the_fake_server_refuses_broken_or_unwanted_image_parts(srv: FakeOpenAI) -> None:
    chat = client(srv, vision=True)
    fake_png = Image(data=b"not a picture", mime="image/png")  # declared png, bytes say otherwise
    with pytest.raises(RequestRejected, match="not image/png"):
        await chat.complete([ChatMessage("user", "x", images=(fake_png,))], max_tokens=8, temperature=0.1)
    srv.vision = False
    with pytest.raises(RequestRejected, match="does not support image input"):
        await chat.complete([ChatMessage("user", "x", images=(Image(url=URL),))], max_tokens=8, temperature=0.1)
    assert srv.images == []
    await chat.close()


# --- counting ------------------------------------------------------------------------------------


def test_an_image_counts_as_the_configured_estimate() -> None:
    profile = ServerProfile.configured(LLMConfig(image_tokens=500))
    assert profile.count_message("", images=2) == MESSAGE_OVERHEAD + 1000
    assert profile.count_message("hello") == profile.count("hello") + MESSAGE_OVERHEAD


async def test_a_prompt_with_pictures_does_not_calibrate_the_text_estimate(srv: FakeOpenAI) -> None:
    seeing, blind = client(srv, vision=True), client(srv, vision=False)
    messages = [ChatMessage("user", "猫"), ChatMessage("user", "这只", images=(Image(url=URL),))]
    assert seeing._estimate(messages) == 0  # the usage it reports includes the picture's unknown cost
    assert blind._estimate(messages) == sum(blind.profile.count_message(m.content) for m in messages)
    await seeing.close()
    await blind.close()


# --- vision = "auto" per server kind ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("owned_by", "model", "card", "props", "sees"),
    [
        ("llamacpp", "qwen2.5-vl-7b", {}, {"modalities": {"vision": True, "audio": False}}, True),
        ("llamacpp", "qwen2.5-vl-7b", {}, {"modalities": {"vision": False, "audio": False}}, False),
        ("llamacpp", "qwen2.5-vl-7b", {}, None, False),  # an older llama-server: no /props
        ("me", "llava-v1.6.gguf", {}, None, False),  # llama-cpp-python: nothing tells
        ("lmdeploy", "OpenGVLab/InternVL2_5-8B", {}, None, True),
        ("lmdeploy", "internlm2_5-7b-chat", {}, None, False),
        ("vllm", "Qwen/Qwen2.5-VL-7B-Instruct", {}, None, False),  # vLLM's card does not say
        ("vllm", "served-name", {"input_modalities": ["text", "image"]}, None, True),
        ("system", "gpt-4o-mini", {}, None, True),
        ("openai", "gpt-3.5-turbo", {}, None, False),
    ],
)
async def test_vision_auto_per_server_kind(
    srv: FakeOpenAI, owned_by: str, model: str, card: dict[str, Any], props: dict[str, Any] | None, sees: bool
) -> None:
    srv.owned_by, srv.models, srv.card, srv.props = owned_by, [model], card, props
    chat = client(srv, model=model)
    profile = await chat.probe()
    assert profile.reachable and profile.vision is sees
    assert ("sees images" in profile.describe()) is sees
    await chat.close()


@pytest.mark.parametrize(("setting", "sees"), [(False, False), (True, True)])
async def test_the_config_overrides_what_the_server_says(srv: FakeOpenAI, setting: bool, sees: bool) -> None:
    srv.owned_by, srv.props = "llamacpp", {"modalities": {"vision": not setting}}
    chat = client(srv, vision=setting)
    assert (await chat.probe()).vision is sees
    await chat.close()


def test_before_the_probe_a_cloud_model_is_judged_by_its_name() -> None:
    cloud = "https://api.openai.com/v1"
    assert ServerProfile.configured(LLMConfig(base_url=cloud, model="gpt-4.1-mini")).vision
    assert not ServerProfile.configured(LLMConfig(base_url=cloud, model="gpt-3.5-turbo")).vision
    assert not ServerProfile.configured(LLMConfig(model="gpt-4o")).vision  # a local server: the probe decides


# --- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('[llm]\nvision = "maybe"\n', '[llm] vision: must be "auto", true or false'),
        ("[llm]\nmax_images = -1\n", "[llm] max_images"),
        ("[llm]\nmax_image_bytes = 10\n", "[llm] max_image_bytes"),
        ("[llm]\nimage_tokens = -5\n", "[llm] image_tokens"),
        ('[llm]\ninline_images = "sometimes"\n', "[llm] inline_images"),
    ],
)
def test_wrong_image_settings_name_their_key(tmp_path: Path, toml: str, names: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, env_file=tmp_path / "none.env")


def test_vision_reads_auto_true_and_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    for written, value in (('"auto"', "auto"), ("true", True), ("false", False), ('"AUTO"', "auto")):
        path.write_text(f"[llm]\nvision = {written}\n", encoding="utf-8")
        assert load_config(path, env_file=tmp_path / "none.env").llm.vision == value
    monkeypatch.setenv("BOT_LLM__VISION", "true")
    assert load_config(path, env_file=tmp_path / "none.env").llm.vision is True


# --- image limits ------------------------------------------------------------------------------------


class _Pictures(BaseHTTPRequestHandler):
    """Serves /cat.png, /big.png (chunked, no length), /page.html; anything else is a 404."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        files = {"/cat.png": PNG, "/big.png": PNG + b"\x00" * 4096, "/page.html": b"<html></html>"}
        data = files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if self.path == "/big.png":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 1024):
                piece = data[i : i + 1024]
                self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def pictures() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pictures)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_types_are_told_by_magic_bytes() -> None:
    assert [sniff(d) for d in (PNG, JPEG, GIF, WEBP)] == ["image/png", "image/jpeg", "image/gif", "image/webp"]
    assert sniff(b"<svg xmlns=...>") == sniff(b"") == sniff(b"RIFF\x00\x00\x00\x00WAVE") == ""
    assert Image.of_bytes(JPEG).mime == "image/jpeg"
    assert "bytes" in repr(Image.of_bytes(PNG)) and "PNG" not in repr(Image.of_bytes(PNG))


async def test_limits_on_count_size_and_type() -> None:
    # the operator lists the CDN: a listed name goes to the server as it is (nothing resolves names here)
    gate = ImageGate(LLMConfig(max_images=2, max_image_bytes=2048), FetchPolicy.allowing("cdn.example.com"))
    big = PNG + b"\x00" * 4096
    prepared = await gate.prepare(
        [
            Image.of_bytes(b"MZ\x90\x00 an exe named cat.png"),
            Image.of_bytes(big),
            Image(url=URL, mime="image/svg+xml"),
            Image(url=URL, size=9999),
            Image(url="ftp://example.com/cat.png"),
            Image(url="data:image/png;base64," + base64.b64encode(GIF).decode()),  # declared png, really gif
            Image(url=URL, mime="image/png", size=100),
            Image.of_bytes(WEBP),
        ]
    )
    assert [i.mime for i in prepared.images] == ["image/gif", "image/png"]
    assert prepared.images[1].url == URL  # sent as the URL: the server fetches it
    assert [r.reason for r in prepared.rejected] == [
        "not_an_image", "too_large", "not_an_image", "too_large", "bad_url", "too_many",
    ]
    await gate.close()


async def test_no_images_at_all_when_max_images_is_zero() -> None:
    gate = ImageGate(LLMConfig(max_images=0))
    prepared = await gate.prepare([Image.of_bytes(PNG)])
    assert prepared.images == () and prepared.rejected[0].reason == "too_many"
    await gate.close()


async def test_inline_images_are_downloaded_and_checked(pictures: str) -> None:
    gate = ImageGate(LLMConfig(inline_images=True, max_image_bytes=2048), FetchPolicy.allowing("127.0.0.1"))
    prepared = await gate.prepare(
        [
            Image(url=f"{pictures}/cat.png"),
            Image(url=f"{pictures}/big.png"),
            Image(url=f"{pictures}/page.html"),
            Image(url=f"{pictures}/gone.png"),
        ]
    )
    assert len(prepared.images) == 1
    assert prepared.images[0].data == PNG and prepared.images[0].content_url.startswith("data:image/png;base64,")
    assert [r.reason for r in prepared.rejected] == ["too_large", "not_an_image", "unreachable"]
    assert "HTTP 404" in prepared.rejected[2].detail
    down = await gate.prepare([Image(url="http://127.0.0.1:9/cat.png")])  # nothing listens on port 9
    assert down.rejected[0].reason == "unreachable" and "ConnectError" in down.rejected[0].detail
    await gate.close()
