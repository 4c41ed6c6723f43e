"""The copies of one QQ group message that every account of a scene receives.

They are told apart from a new message by sender, time and content, not by message id: NapCat (and
LLOneBot) hash the receiving QQ client's own local id of a message, which need not match between
accounts; go-cqhttp and Lagrange derive it from the group's sequence number and agree. Each account's own id for the message is kept, so the line an account posts quotes the
message as that account knows it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from nonebot.adapters.onebot.v11 import GroupMessageEvent

KEPT = 5_000  # messages whose ids per account are remembered (a round quotes only its own, moments old)


def content_of(event: GroupMessageEvent) -> str:
    """Group, sender and words of a message, the same on every account: text, @ targets, and the kind of
    any other segment (a picture's address, or a quote's id, differs per account)."""
    parts = []
    for seg in event.original_message:
        if seg.type == "text":
            parts.append(str(seg.data.get("text", "")))
        elif seg.type == "at":
            parts.append(f"@{seg.data.get('qq', '')}")
        elif seg.type != "reply":
            parts.append(f"[{seg.type}]")
    digest = hashlib.blake2b("".join("".join(parts).split()).encode(), digest_size=8).hexdigest()
    return f"{event.group_id}:{event.user_id}:{digest}"


def copy_keys(event: GroupMessageEvent) -> tuple[str, ...]:
    """The names one message carries on every account: its content at its second, and at the seconds
    either side (an implementation may stamp a copy a second apart)."""
    content, at = content_of(event), int(event.time)
    return f"{content}@{at}", f"{content}@{at - 1}", f"{content}@{at + 1}"


class OwnIds:
    """Each account's own id for the messages of scenes, by content."""

    def __init__(self, kept: int = KEPT):
        self.kept = kept
        self._ids: OrderedDict[str, dict[str, int]] = OrderedDict()

    def saw(self, self_id: str, event: GroupMessageEvent) -> None:
        """This account received its copy of the message."""
        content = content_of(event)
        ids = self._ids.pop(content, {})
        ids[self_id] = event.message_id
        self._ids[content] = ids
        while len(self._ids) > self.kept:
            self._ids.popitem(last=False)

    def of(self, self_id: str, event: GroupMessageEvent) -> int | None:
        """The id this account has for the message (None until its copy arrived)."""
        return self._ids.get(content_of(event), {}).get(self_id)
