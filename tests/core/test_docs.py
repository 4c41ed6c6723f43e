"""README and config.toml stay true: every config key is in both, and the tables match the file."""

from __future__ import annotations

import importlib.util
import re

import pytest

from core.config import Settings
from tests.conftest import ROOT

SECTIONS = list(Settings.model_fields)


def _tables_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("config_tables", ROOT / ".ci" / "config_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("section", SECTIONS)
def test_every_key_is_documented(section: str) -> None:
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    body = re.search(rf"^\[{section}\]\n(.*?)(?=^\[|\Z)", config, re.S | re.M)
    assert body, f"[{section}] missing from config.toml"
    model = type(getattr(Settings(), section))
    for key in model.model_fields:
        assert re.search(rf"^#?\s*{key}\s*[=:]", body.group(1), re.M), f"[{section}] {key} missing from config.toml"


def test_readme_tables_match_config_toml() -> None:
    tables = _tables_module()
    block = tables.tables((ROOT / "config.toml").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert block in readme, "README config tables are stale: run `.venv/bin/python .ci/config_tables.py --write README.md`"
