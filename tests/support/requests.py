"""Telling the bot's requests apart on the test model server: replies or background work."""

from __future__ import annotations

from typing import Any

from memory.summarizer import FACTS_PROMPT, SUMMARY_PROMPT

_PROMPTS = (*SUMMARY_PROMPT.values(), *FACTS_PROMPT.values())
_BACKGROUND = (*(p.split("{")[0][:12] for p in _PROMPTS), "You translate")


def is_background(body: dict[str, Any]) -> bool:
    """A summary, facts or translation request (every request streams, so `stream` can't tell)."""
    first = body.get("messages", [{}])[0].get("content", "")
    return isinstance(first, str) and first.startswith(_BACKGROUND)


def replies(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reply requests among `requests`."""
    return [b for b in requests if not is_background(b)]


def system_text(body: dict[str, Any]) -> str:
    """Every system message of a request, joined (stable prefix, context, reminder)."""
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")
