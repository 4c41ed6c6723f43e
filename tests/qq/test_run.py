"""`python -m bot run` as a process: QQ and Discord in one process, and failures that end it with one line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.support.ports import free_port


async def _run(config: Path, *args: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), *args,
        cwd=config.parent, env={**clean, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_failures_end_the_process_with_one_line_and_nonzero_status(make_settings: Any, tmp_path: Path) -> None:
    """Discord failing beside QQ stops both; a broken App stops QQ; each says why in one line."""
    # the local model port is closed on purpose: no answer is needed before these failures
    good = make_settings(qq={"enabled": True}, llm={"base_url": "http://127.0.0.1:9/v1"})
    assert good.source is not None
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    broken = broken_dir / "config.toml"
    broken.write_text(
        good.source.read_text(encoding="utf-8").replace(str(ROOT / "persona"), str(tmp_path / "no-cards")),
        encoding="utf-8",
    )
    # no network here means a DNS error; with network the fake token is refused: DiscordStartError either way
    both, no_cards = await asyncio.gather(
        _run(good.source, BOT_DISCORD__TOKEN="MTIz.fake.token", BOT_QQ__PORT=str(free_port())),
        _run(broken, "--platform", "qq", BOT_QQ__PORT=str(free_port())),
    )
    code, out = both
    assert code == 1, out
    assert "Uvicorn running on" in out  # QQ was up before Discord failed and took the process down
    assert out.strip().splitlines()[-1].startswith("error: Discord: ")
    assert "Traceback" not in out
    code, out = no_cards
    assert code == 1, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("error: could not start: no persona cards found"), out
    assert str(tmp_path / "no-cards") in last
    assert "Traceback" not in out


async def test_a_listener_beyond_this_machine_needs_a_token(make_settings: Any) -> None:
    """[qq] host 0.0.0.0 (or ::) with no BOT_QQ__ACCESS_TOKEN: no server, one line saying what to set."""
    settings = make_settings(qq={"enabled": True}, llm={"base_url": "http://127.0.0.1:9/v1"})
    assert settings.source is not None
    hosts = ("0.0.0.0", "::")
    results = await asyncio.gather(*(
        _run(settings.source, "--platform", "qq", BOT_QQ__HOST=host, BOT_QQ__PORT=str(free_port())) for host in hosts
    ))
    for host, (code, out) in zip(hosts, results, strict=True):
        assert code == 2, out
        last = out.strip().splitlines()[-1]
        assert last.startswith(f"error: QQ: [qq] host '{host}' ") and "set BOT_QQ__ACCESS_TOKEN" in last, out
        assert "Uvicorn running" not in out and "Traceback" not in out
