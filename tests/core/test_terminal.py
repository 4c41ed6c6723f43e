"""The interactive terminal chat, driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.support.openai_server import FakeOpenAI, Script


def read_until(fd: int, needle: str, timeout: float = 60.0) -> str:
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            buf += chunk
            if needle.encode() in buf:
                return buf.decode(errors="replace")
    raise AssertionError(f"{needle!r} not seen in {buf.decode(errors='replace')!r}")


def test_interactive_chat_greets_streams_and_takes_commands(tmp_path: Path, llm: FakeOpenAI) -> None:
    (tmp_path / "config.toml").write_text(
        f'[personas]\ndirs = ["{ROOT / "persona"}"]\n[memory]\nbackend = "sqlite"\n[knowledge]\nenabled = false\n'
        f'[llm]\nbase_url = "{llm.base_url}"\nmodel = "test-model"\n',
        encoding="utf-8",
    )
    llm.push(Script(text="呵呵，汝可算来了，咱等得尾巴都快打结了。", chunk_size=2, chunk_delay=0.01))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update({"PYTHONPATH": str(ROOT), "BOT_LOG_LEVEL": "WARNING"})
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "chat"], cwd=tmp_path, stdin=child, stdout=child,
                            stderr=child, env=env, close_fds=True)
    os.close(child)
    try:
        greeting = read_until(main, "/quit")
        assert "赫萝:" in greeting and "serves test-model" in greeting
        os.write(main, "你好呀\n".encode())
        assert "赫萝: 呵呵，汝可算来了，咱等得尾巴都快打结了。" in read_until(main, "打结了。")
        os.write(main, b"/persona wukong\n")  # the table's /persona set, answered with the new character's greeting
        assert "俺老孙" in read_until(main, "俺老孙")
        os.write(main, b"/help\n")
        assert "/forget WHICH [CHARACTER] [@user]" in read_until(main, "/quit — leave")
        os.write(main, b"/quit\n")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(main)
    assert [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"] == ["你好呀"]


def test_prompt_and_words_on_stdout_logs_in_the_data_folder(tmp_path: Path, llm: FakeOpenAI) -> None:
    (tmp_path / "config.toml").write_text(
        f'[personas]\ndirs = ["{ROOT / "persona"}"]\n[memory]\nbackend = "sqlite"\nfacts_every = 1\n'
        f'[knowledge]\nenabled = false\n[llm]\nbase_url = "{llm.base_url}"\nmodel = "test-model"\n',
        encoding="utf-8",
    )
    llm.push(Script(text="呵呵，汝可算来了。", chunk_size=2, chunk_delay=0.01), Script(text="[]"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update({"PYTHONPATH": str(ROOT), "BOT_LOG_LEVEL": "INFO"})
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "chat"], cwd=tmp_path, stdin=child, stdout=child,
                            stderr=subprocess.PIPE, env=env, close_fds=True)
    os.close(child)
    try:
        read_until(main, "> ")  # the prompt is on stdout, after the greeting
        os.write(main, "你好呀\n".encode())
        words = read_until(main, "来了。")
        os.write(main, b"/quit\n")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(main)
    assert "INFO" not in words and "HTTP Request" not in words
    log = (tmp_path / "data" / "logs" / "chat.log").read_text(encoding="utf-8")
    assert "reply by model test-model" in log
    facts = [b for b in llm.requests if "【说话的人】" in b["messages"][-1]["content"]]
    assert facts and facts[0]["messages"][-1]["content"].startswith("【说话的人】用户\n")  # not the login name
