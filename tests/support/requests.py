"""Telling the bot's requests apart on the test model server: replies or background work."""

from __future__ import annotations

from typing import Any

from memory.summarizer import FACTS_PROMPT, SUMMARY_PROMPT

_PROMPTS = (*SUMMARY_PROMPT.values(), *FACTS_PROMPT.values())
_BACKGROUND = (*(p.split("{")[0][:12] for p in _PROMPTS), "You translate")


def is_background(body: dict[str, Any]) -> bool:
    """A summary, facts or translation request (every request streams, so `stream` can't tell): its task
    opens the prompt, or follows the conversation's own prompt (`[memory] background_after_reply`)."""
    messages = body.get("messages", [{}])
    return any(isinstance(m.get("content"), str) and m.get("role", "system") == "system"
               and m["content"].startswith(_BACKGROUND) for m in (messages[0], messages[-2:][0]))


def task_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A background request's own messages (its task and data), without the conversation before them."""
    messages = body["messages"]
    return messages[-2:] if len(messages) > 2 else messages


def replies(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reply requests among `requests`."""
    return [b for b in requests if not is_background(b)]


def system_text(body: dict[str, Any]) -> str:
    """Every system message of a request, joined (stable prefix, context, reminder)."""
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")
