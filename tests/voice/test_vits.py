"""The vits-simple-api client against a real local HTTP server that speaks its protocol."""

from __future__ import annotations

import socket

import pytest

from tests.voice.vits_server import RATE, FakeVits
from voice.audio import decode
from voice.base import VoiceError
from voice.vits import VitsClient, VitsEngine


async def test_speakers_are_listed_per_model(vits: FakeVits) -> None:
    client = VitsClient(vits.url)
    try:
        found = await client.speakers()
    finally:
        await client.close()
    assert [s.name for s in found["VITS"]] == ["ホロ", "綾地寧々"]
    assert found["VITS"][1].id == 1 and found["VITS"][1].lang == ("ja", "zh")
    assert found["W2V2-VITS"] == []


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("vits", {"length": 1.2, "noise": 0.5, "noisew": 0.6, "segment_size": 30}),
        ("bert-vits2", {"sdp_ratio": 0.3, "emotion": 2, "style_text": "嬉しい", "style_weight": 0.7}),
        ("gpt-sovits", {"preset": "default", "top_k": 5, "top_p": 0.9, "temperature": 0.8, "speed": 1.1}),
    ],
)
async def test_each_route_gets_its_parameters_and_returns_audio(vits: FakeVits, model: str, params: dict) -> None:
    client = VitsClient(vits.url)
    try:
        data = await client.synthesize(model, "わっちは賢狼じゃ", 0, fmt="wav", lang="ja", params=params)  # type: ignore[arg-type]
    finally:
        await client.close()
    audio = decode(data)
    assert audio.rate == RATE and audio.duration > 0.5
    (got,) = vits.received
    assert got.route == f"/voice/{model}" and got.method == "POST"
    assert got.params["text"] == "わっちは賢狼じゃ" and got.params["id"] == "0" and got.params["lang"] == "ja"
    assert {k: got.params[k] for k in params} == {k: str(v) for k, v in params.items()}


async def test_format_choice_reaches_the_server(vits: FakeVits) -> None:
    client = VitsClient(vits.url)
    try:
        data = await client.synthesize("vits", "こんにちは", 1, fmt="flac")
    finally:
        await client.close()
    assert data[:4] == b"fLaC"
    assert vits.received[0].params["format"] == "flac"


async def test_parameters_of_another_route_and_booleans_are_refused_before_sending(vits: FakeVits) -> None:
    client = VitsClient(vits.url)
    try:
        with pytest.raises(ValueError, match="sdp_ratio"):
            await client.synthesize("vits", "あ", 0, params={"sdp_ratio": 0.2})
        with pytest.raises(ValueError, match="boolean"):
            await client.synthesize("gpt-sovits", "あ", 0, params={"top_k": True})
    finally:
        await client.close()
    assert vits.received == []


async def test_api_key_is_sent_as_header_and_a_wrong_one_is_a_clear_error() -> None:
    with FakeVits(api_key="s3cret") as server:
        good = VitsClient(server.url, api_key="s3cret")
        bad = VitsClient(server.url, api_key="wrong")
        try:
            assert await good.synthesize("vits", "はい", 0)
            assert server.received[0].headers["x-api-key"] == "s3cret"
            with pytest.raises(VoiceError, match=r"rejected the API key \(401 Invalid API Key\).*BOT_VOICE__VITS_API_KEY"):
                await bad.synthesize("vits", "はい", 0)
        finally:
            await good.close()
            await bad.close()


async def test_json_error_body_becomes_the_message(vits: FakeVits) -> None:
    client = VitsClient(vits.url)
    try:
        with pytest.raises(VoiceError, match=r"HTTP 400: id 7 does not exist"):
            await client.synthesize("vits", "はい", 7)
        vits.fail = "CUDA out of memory"
        with pytest.raises(VoiceError, match="HTTP 500: CUDA out of memory"):
            await client.synthesize("vits", "はい", 0)
    finally:
        await client.close()


async def test_unreachable_server_and_timeout_are_voice_errors(vits: FakeVits) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = VitsClient(f"http://127.0.0.1:{dead_port}")
    vits.delay = 2.0
    slow = VitsClient(vits.url, timeout=0.3)
    try:
        with pytest.raises(VoiceError, match=r"cannot reach vits-simple-api.*vits_url"):
            await dead.speakers()
        with pytest.raises(VoiceError, match=r"timed out.*\[voice\] timeout"):
            await slow.synthesize("vits", "はい", 0)
    finally:
        await dead.close()
        await slow.close()


async def test_engine_resolves_speaker_names_once_and_decodes(vits: FakeVits) -> None:
    client = VitsClient(vits.url)
    engine = VitsEngine(client, "vits", {"length": 1.0})
    calls: list[str] = []
    original = client.speakers

    async def counted():  # type: ignore[no-untyped-def]
        calls.append("speakers")
        return await original()

    client.speakers = counted  # type: ignore[method-assign]
    try:
        first = await engine.synthesize("ぬしよ", "綾地寧々", "ja")
        await engine.synthesize("ぬしよ、また", "綾地寧々", "ja")
        assert first.duration > 0.3
        assert [r.params["id"] for r in vits.received] == ["1", "1"]
        assert calls == ["speakers"]
        with pytest.raises(VoiceError, match=r"no VITS speaker 'nobody'.*ホロ"):
            await engine.synthesize("はい", "nobody", "ja")
    finally:
        await client.close()


async def test_a_json_answer_with_status_200_is_not_taken_for_audio(vits: FakeVits) -> None:
    vits.fail, vits.fail_status = "model not loaded", 200
    client = VitsClient(vits.url)
    try:
        with pytest.raises(VoiceError, match="model not loaded"):
            await client.synthesize("vits", "はい", 0)
    finally:
        await client.close()
