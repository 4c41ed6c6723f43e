"""Training reads a novel file exactly as ingest does: one decoder for both."""

from __future__ import annotations

import pytest

from memory.knowledge.reading import read_source
from training.text import read_text

TEXT = "第一回 灵根育孕源流出\r\n海外有一国土，名曰傲来国。\r\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "gb18030"])
def test_training_and_ingest_decode_the_same_file_alike(tmp_path, encoding: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "novel.txt"
    path.write_bytes(TEXT.encode(encoding))
    decoded = read_text(path.read_bytes())
    assert decoded == TEXT.replace("\r\n", "\n")
    ingested = "\n".join(s.text for s in read_source(path).sections)
    assert "傲来国" in ingested and "傲来国" in decoded
