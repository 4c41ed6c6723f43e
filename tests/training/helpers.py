"""Shared pieces of the training tests: a scripted model that answers QA prompts, a made-up novel, stand-in tools."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any

from tests.support.openai_server import Script

NUMBERED = re.compile(r"^\d+\. ", re.M)


def prompt_of(body: dict[str, Any]) -> str:
    """The last user message of a chat request."""
    return str(body["messages"][-1]["content"])


def qa_responder(body: dict[str, Any], questions: int = 2) -> Script:
    """Questions derived from the piece's text (so they differ per piece), then one answer per question."""
    prompt = prompt_of(body)
    tag = hashlib.sha1(prompt.split("原文", 1)[-1].encode()).hexdigest()[:8]
    if '{"questions"' in prompt:
        return Script(text=json.dumps({"questions": [f"问题{tag}-{i}？" for i in range(questions)]}, ensure_ascii=False))
    n = len(NUMBERED.findall(prompt))
    answers = [f"俺老孙答第{i}问。" for i in range(n)]
    return Script(text="```json\n" + json.dumps({"answers": answers}, ensure_ascii=False) + "\n```")


def write_novel(path: Path, chapters: int = 4, paragraphs: int = 6) -> Path:
    """A made-up novel with 第N回 headings; every paragraph is ~60 characters and unique."""
    numerals = "一二三四五六七八九十"
    lines = []
    for c in range(chapters):
        lines.append(f"第{numerals[c]}回 测试章节{c + 1}")
        for p in range(paragraphs):
            lines.append(f"［{c + 1}-{p + 1}］石猴在山中行走，遇见一条溪水，便坐下来歇脚，心中盘算明日的去处。" * 1)
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def tool(folder: Path, name: str, body: str = "") -> Path:
    """A real executable on PATH that records its arguments in `folder/calls.log`, then runs `body`."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{folder}/calls.log"\n{body}\n', encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path
