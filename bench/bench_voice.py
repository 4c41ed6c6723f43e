"""Voice benchmark: synthesis real-time factor per engine, and voiced-reply latency (text vs clip).

Run: .venv/bin/python -m bench.bench_voice   (prints a table; numbers go into docs/voice.md)
The VITS row runs against the local imitation of vits-simple-api in tests/voice/vits_server.py, so
it measures only this client (HTTP, WAV decode, re-encode), not a real VITS model.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tomli_w  # noqa: E402

from bot.app import App  # noqa: E402
from core.config import Settings, load_config  # noqa: E402
from core.messages import Incoming  # noqa: E402
from tests.support.openai_server import FakeOpenAI, Script  # noqa: E402
from tests.voice.vits_server import FakeVits  # noqa: E402
from voice.audio import encode  # noqa: E402
from voice.kokoro import KokoroEngine  # noqa: E402
from voice.vits import VitsClient, VitsEngine  # noqa: E402

LINES = [
    "わっちは賢狼ホロじゃ。",
    "ぬしはたわけじゃな。りんごをもう一つくれぬか？",
    "旅は長いが、ぬしと一緒なら退屈はせぬ。ヨイツの森を思い出すのう。",
]


async def bench_engine(engine: KokoroEngine | VitsEngine, speaker: str) -> tuple[float, float, float]:
    """(first-call seconds, mean RTF over LINES, mean Opus-encode seconds)."""
    started = time.perf_counter()
    await engine.synthesize("はい。", speaker, "ja")
    first = time.perf_counter() - started
    rtfs, encodes = [], []
    for line in LINES:
        t0 = time.perf_counter()
        audio = await engine.synthesize(line, speaker, "ja")
        rtfs.append((time.perf_counter() - t0) / audio.duration)
        t1 = time.perf_counter()
        encode(audio, "ogg")
        encodes.append(time.perf_counter() - t1)
    return first, statistics.mean(rtfs), statistics.mean(encodes)


def settings_in(folder: Path, **sections: dict[str, object]) -> Settings:
    data: dict[str, dict[str, object]] = {
        "bot": {"data_dir": str(folder / "data")},
        "personas": {"dirs": [str(ROOT / "persona")], "import_dir": str(folder / "imported")},
        "memory": {"backend": "sqlite"},
        "knowledge": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    (folder / "config.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_config(folder / "config.toml")


async def bench_reply(llm: FakeOpenAI, translate: bool, rounds: int = 3) -> tuple[float, float]:
    """Median (text reply seconds, clip ready seconds) for voiced replies with kokoro."""
    if translate:
        llm.responder = lambda b: Script(text=LINES[1]) if "You translate" in b["messages"][0]["content"] else None
        llm.default = Script(text="汝真是个笨蛋。再给咱一个苹果吧？", chunk_delay=0.0)
    else:
        llm.responder = None
        llm.default = Script(text=LINES[1])
    texts, clips = [], []
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_in(
            Path(tmp),
            llm={"base_url": llm.base_url, "model": "m"},
            voice={"enabled": True, "engine": "kokoro", "cache_mb": 0},
        )
        async with App.open(settings) as app:
            await app.voice.render(app.personas.get("horo"), "はい。", fmt="ogg")  # type: ignore[union-attr]
            for i in range(rounds):
                msg = Incoming("discord", f"c{i}", "u", "u", f"你好{i}", is_direct=True)
                t0 = time.perf_counter()
                reply = await app.chain.handle(msg)
                texts.append(time.perf_counter() - t0)
                assert reply is not None and reply.voice is not None
                clip = await reply.voice
                assert clip is not None
                clips.append(time.perf_counter() - t0)
    return statistics.median(texts), statistics.median(clips)


async def main() -> None:
    print(f"cpu cores: {os.cpu_count()}")
    kokoro = KokoroEngine()
    first, rtf, enc = await bench_engine(kokoro, "jf_alpha")
    print(f"kokoro      first call (model load) {first:5.2f} s   RTF {rtf:4.2f}   opus encode {enc * 1000:5.1f} ms/clip")
    await kokoro.close()
    with FakeVits() as server:
        client = VitsClient(server.url)
        first, rtf, enc = await bench_engine(VitsEngine(client, "vits"), "0")
        await client.close()
    print(f"vits-client first call {first:5.2f} s   RTF {rtf:6.4f} (imitation server: client cost only)   opus encode {enc * 1000:5.1f} ms/clip")
    with FakeOpenAI() as llm:
        for translate in (False, True):
            text_s, clip_s = await bench_reply(llm, translate)
            label = "zh reply, translated" if translate else "ja reply, no translation"
            print(f"voiced reply ({label}): text {text_s:5.2f} s, clip ready {clip_s:5.2f} s (kokoro, ogg)")


if __name__ == "__main__":
    asyncio.run(main())
