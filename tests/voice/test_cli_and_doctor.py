"""`python -m bot voice` as a real subprocess, and the doctor's voice check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.voice.vits_server import FakeVits
from voice import voice_check
from voice.audio import decode, loudness

ROOT = Path(__file__).resolve().parents[2]


def run_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bot", "--config", str(tmp / "config.toml"), "voice", *args]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # the real voice model
def test_cli_speaks_japanese_with_the_embedded_voice(make_settings: MakeSettings, tmp_path: Path) -> None:
    make_settings(llm={"provider": "offline"})
    out = tmp_path / "clips" / "horo.wav"
    done = run_cli(tmp_path, "--persona", "horo", "--text", "汝はたわけじゃな。", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "text: ぬしはたわけじゃな。" in done.stdout
    seconds = float(done.stdout.split("duration: ")[1].split(" s")[0])
    audio = decode(out.read_bytes())
    assert audio.rate == 24000 and abs(audio.duration - seconds) < 0.02 and seconds > 0.5
    assert loudness(audio) > 0.01


def test_cli_translates_through_the_model_and_writes_opus(
    make_settings: MakeSettings, tmp_path: Path, llm: FakeOpenAI, vits: FakeVits
) -> None:
    make_settings(llm={"base_url": llm.base_url, "model": "m"}, voice={"engine": "vits", "vits_url": vits.url})
    llm.default = Script(text="わっちは賢狼ホロじゃ。")
    out = tmp_path / "horo.ogg"
    done = run_cli(tmp_path, "--persona", "horo", "--text", "咱是贤狼赫萝。", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "text: わっちは賢狼ホロじゃ。" in done.stdout and "(ogg," in done.stdout
    assert out.read_bytes()[:4] == b"OggS"
    assert "咱 → わっち" in llm.requests[0]["messages"][0]["content"]


def test_cli_no_translate_and_nothing_to_say(make_settings: MakeSettings, tmp_path: Path, vits: FakeVits) -> None:
    make_settings(llm={"provider": "offline"}, voice={"engine": "vits", "vits_url": vits.url})
    done = run_cli(tmp_path, "--persona", "horo", "--text", "你好", "--out", str(tmp_path / "a.flac"), "--no-translate")
    assert done.returncode == 0, done.stderr
    assert "text: 你好" in done.stdout and vits.received[0].params["text"] == "你好"
    failed = run_cli(tmp_path, "--persona", "horo", "--text", "你好", "--out", str(tmp_path / "b.wav"))
    assert failed.returncode == 1 and "nothing to say" in failed.stderr


def write_card(folder: Path, pid: str, engine: str, speaker: str) -> None:
    (folder / pid).mkdir(parents=True)
    (folder / pid / "card.toml").write_text(
        f'name = "{pid}"\n[voice]\nengine = "{engine}"\nspeaker = "{speaker}"\nlanguage = "ja"\ntranslate_to = "ja"\n',
        encoding="utf-8",
    )


async def test_doctor_lists_vits_speakers_and_checks_each_card(make_settings: MakeSettings, tmp_path: Path, vits: FakeVits) -> None:
    write_card(tmp_path / "imported", "nene", "vits", "綾地寧々")
    settings = make_settings(voice={"enabled": True, "vits_url": vits.url})
    ok, detail, _ = await voice_check(settings)
    assert ok and "VITS 2" in detail and "BERT-VITS2 1" in detail
    assert "nene vits/綾地寧々" in detail and "horo kokoro/jf_alpha" in detail
    write_card(tmp_path / "imported", "ghost", "bert-vits2", "nobody")
    ok, detail, fix = await voice_check(settings)
    assert not ok and "ghost: no BERT-VITS2 speaker 'nobody'" in detail and "speaker" in fix


async def test_doctor_reports_auth_and_missing_server(make_settings: MakeSettings) -> None:
    with FakeVits(api_key="k") as server:
        # /voice/speakers needs no key; a wrong one shows up on synthesis, which doctor does not run
        ok, detail, _ = await voice_check(make_settings(voice={"enabled": True, "vits_url": server.url}))
        assert ok
        gone = server.url
    ok, detail, fix = await voice_check(make_settings(voice={"enabled": True, "vits_url": gone}))
    assert not ok and "cannot reach" in detail and "vits_url" in fix
    ok, detail, _ = await voice_check(make_settings(voice={"enabled": True}, llm={"provider": "offline"}))
    assert ok and "kokoro" in detail and "only Japanese" in detail
    ok, detail, _ = await voice_check(make_settings(voice={"enabled": False}))
    assert ok and detail.startswith("off")
