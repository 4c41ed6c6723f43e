"""Size and time limits: a model server that ignores its cap, long messages in logs and stores, file modes."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.checks.hygiene import Hidden, ReplyCheck
from core.llm import ChatMessage, reply_chars
from core.logs import LINE_CHARS, RedactingFormatter
from core.messages import Incoming
from memory.redis_store import RedisStore
from memory.sqlite_store import SQLiteStore
from memory.store import ConversationStore
from memory.turns import TURN_CHARS, SessionKey, Turn
from persona.importer import import_card
from persona.library import PersonaLibrary
from tests.conftest import ROOT, MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.outlet import Recorder
from voice.cache import ClipCache

RUNAWAY = ("咱乃贤狼赫萝，汝可要记好了。" * 150_000)[:2_000_000]  # 2 million characters, whatever max_tokens says


def dm(text: str) -> Incoming:
    """A direct message."""
    return Incoming("test", "dm-u1", "u1", "Alice", text, is_direct=True)


def mode(path: Path) -> int:
    """The permission bits of a path."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are made world-readable unless the maker says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


async def test_a_runaway_stream_is_cut_at_the_reply_cap_and_closed(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI
) -> None:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model", "max_tokens": 100},
                             memory={"summary": False, "facts": False})
    app: App = await app_factory(settings)
    llm.push(Script(text=RUNAWAY, chunk_size=16))
    shown: list[str] = []

    async def sink(delta: str) -> None:
        shown.append(delta)

    started = time.monotonic()
    reply = await app.chain.handle(dm("你好"), Recorder(partial=sink))
    took = time.monotonic() - started
    assert reply is not None and reply.mode == "model"
    assert took < 10.0, f"a 2 MB stream held the reply {took:.1f} s"
    cap = reply_chars(100)
    assert 0 < len(reply.text) <= cap and len("".join(shown)) <= cap
    stored = await app.store.recent(SessionKey("horo", "test", "dm", "u1"), 10)
    assert [t.role for t in stored] == ["user", "assistant"] and len(stored[1].text) <= cap
    sent = await asyncio.to_thread(llm.wait_for_streams, 1)  # the loop runs meanwhile: the hang-up reaches the socket
    assert llm.hung_up == 1 and sent[0] < len(RUNAWAY.encode())  # the client closed the stream early


async def test_background_completions_are_cut_too(make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI) -> None:
    app: App = await app_factory(make_settings(llm={"base_url": llm.base_url, "model": "test-model"}))
    llm.push(Script(text=RUNAWAY, chunk_size=4096))  # few big events: the cut falls inside one
    assert app.model is not None
    text = await app.model.complete([ChatMessage("user", "总结")], max_tokens=50, temperature=0.0)
    assert text == RUNAWAY[: reply_chars(50)]
    # waited in a thread: the loop must run for the client's hang-up to reach the socket
    assert await asyncio.to_thread(llm.wait_for_streams, 1) and llm.hung_up == 1


def test_checks_on_a_streamed_reply_take_linear_time() -> None:
    horo = PersonaLibrary([ROOT / "persona"]).get("horo")
    check = ReplyCheck(horo, Hidden(horo), "你好", ["Alice"])
    text = ("咱乃贤狼赫萝，汝可要记好了。苹果和酒，咱都喜欢。" * 2000)[:40_000]
    started = time.monotonic()
    shown = []
    for i in range(0, len(text), 2):  # two characters a piece, as a fast server streams
        shown.append(check.feed(text[i : i + 2]))
        assert time.monotonic() - started < 5.0, f"checking {i} streamed characters took over 5 s"
    shown.append(check.finish())
    assert "".join(shown) == check.result() == text


@pytest.fixture(params=["redis", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str) -> AsyncIterator[ConversationStore]:
    """A store of each backend."""
    opened: ConversationStore
    if request.param == "redis":
        opened = RedisStore(redis_url, prefix=redis_prefix)
    else:
        opened = SQLiteStore(tmp_path / "m.sqlite3")
    yield opened
    await opened.close()


async def test_a_stored_turn_keeps_a_bounded_text(store: ConversationStore) -> None:
    key = SessionKey("horo", "test", "dm", "u1")
    back = await store.append(key, [Turn("user", "x" * 1_000_000, "u1"), Turn("assistant", "好。")])
    kept = await store.recent(key, 10)
    assert [len(t.text) for t in kept] == [TURN_CHARS, 2] == [len(t.text) for t in back]
    assert kept[0].text.endswith("…")


def test_a_long_log_record_is_cut_and_secrets_stay_hidden() -> None:
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", ["sk-secret-key"])
    long = "sk-secret-key " + "x" * 1_000_000 + "\n" + "y" * 10_000 + "\nend sk-secret-key"
    record = logging.LogRecord("t", logging.DEBUG, __file__, 1, "got %s", (long,), None)
    text = formatter.format(record)
    lines = text.split("\n")
    assert len(lines) == 3 and all(len(line) <= LINE_CHARS for line in lines)
    assert "characters cut]" in lines[0] and "characters cut]" in lines[1] and lines[2] == "end ***"
    assert "sk-secret-key" not in text and "got *** xxx" in lines[0]


async def test_memory_files_are_private(
    umask_022: None, make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, tmp_path: Path
) -> None:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, memory={"summary": False, "facts": False})
    data = settings.bot.data_dir
    assert not data.exists()
    app: App = await app_factory(settings)
    await app.chain.handle(dm("你好"))
    assert mode(data) == 0o700
    db = data / "memory.sqlite3"
    made = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    assert all(p.exists() for p in made) and [mode(p) for p in made] == [0o600] * 3

    clips = ClipCache(data / "voice-cache", max_bytes=1_000_000)
    clips.put("k", "ogg", b"OggS clip")
    assert [mode(p) for p in (data / "voice-cache" / "v1").iterdir()] == [0o600]
    card = tmp_path / "card.json"
    card.write_text('{"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mochi", "description": "a cat"}}',
                    encoding="utf-8")
    assert mode(import_card(card, tmp_path / "imported")) == 0o600


def test_the_chat_log_and_data_folder_are_private(tmp_path: Path, llm: FakeOpenAI) -> None:
    (tmp_path / "config.toml").write_text(
        f'[personas]\ndirs = ["{ROOT / "persona"}"]\n[memory]\nbackend = "sqlite"\nsummary = false\nfacts = false\n'
        f'[knowledge]\nenabled = false\n[llm]\nbase_url = "{llm.base_url}"\nmodel = "test-model"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bot", "chat"], cwd=tmp_path, input="你好\n", text=True,
                          capture_output=True, env=env, timeout=120, umask=0o022)
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data"
    assert (mode(data), mode(data / "logs")) == (0o700, 0o700)
    assert mode(data / "logs" / "chat.log") == 0o600 and mode(data / "memory.sqlite3") == 0o600
    assert "你好" not in (data / "logs" / "chat.log").read_text(encoding="utf-8")
