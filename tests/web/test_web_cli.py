"""Starting the page from the CLI: a page open to other machines needs a token of the operator's own."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tests.support.cli import run_bot


def test_a_non_local_host_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[personas]\ndirs = ["{ROOT / "persona"}"]\n[memory]\nbackend = "sqlite"\n[knowledge]\nenabled = false\n'
        '[web]\nhost = "0.0.0.0"\n', encoding="utf-8")
    out = run_bot(["run", "--platform", "web"], tmp_path, env={"BOT_LLM__PROVIDER": "offline"}, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: web: [web] host '0.0.0.0' lets other machines connect")
    assert "BOT_WEB__TOKEN" in out.stderr and "token=" not in out.stderr


def test_a_token_in_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[web]\ntoken = "abc"\n', encoding="utf-8")
    out = run_bot(["run", "--platform", "web"], tmp_path, timeout=60)
    assert out.returncode != 0 and "[web] token: set BOT_WEB__TOKEN" in out.stderr
