"""Flood merging: messages one user sends while the character is still answering become one."""

from __future__ import annotations

from dataclasses import replace

from core.messages import Incoming


class Bursts:
    """Per-conversation queues of waiting messages; a user's consecutive run is answered once."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._queues: dict[str, list[Incoming]] = {}

    def arrive(self, key: str, msg: Incoming) -> None:
        """Note a message that is about to wait for its conversation."""
        self._queues.setdefault(key, []).append(msg)

    def drop(self, key: str, msg: Incoming) -> None:
        """Forget a waiting message (a duplicate delivery); nothing if it was merged already."""
        queue = [m for m in self._queues.get(key, []) if m is not msg]
        if queue:
            self._queues[key] = queue
        else:
            self._queues.pop(key, None)

    def holds(self, key: str, msg: Incoming) -> bool:
        """Whether the message still waits (not taken with an earlier one of its burst)."""
        return any(m is msg for m in self._queues.get(key, []))

    def take(self, key: str, msg: Incoming) -> list[Incoming] | None:
        """The messages to answer now (this one and its followers, to `merge`), or None if it was taken already."""
        queue = self._queues.get(key, [])
        at = next((i for i, m in enumerate(queue) if m is msg), None)
        if at is None:
            return None
        run = [msg]
        if self.enabled and not msg.author_is_bot:
            for other in queue[at + 1 :]:
                if other.user_id != msg.user_id or other.persona != msg.persona or other.author_is_bot:
                    break
                run.append(other)
        taken = {id(m) for m in run}
        rest = [m for m in queue if id(m) not in taken]
        if rest:
            self._queues[key] = rest
        else:
            self._queues.pop(key, None)
        return run


def merge(run: list[Incoming]) -> Incoming:
    """One Incoming for a run of messages: texts joined, address flags combined, the last id kept."""
    if len(run) == 1:
        return run[0]
    last = run[-1]
    once = {m.message_id or str(id(m)): m for m in run}.values()  # a redelivery in the run is said once
    return replace(
        last,
        text="\n".join(m.text for m in once if m.text.strip()),
        mentions_bot=any(m.mentions_bot for m in run),
        reply_to_bot=any(m.reply_to_bot for m in run),
        attachments=tuple(a for m in run for a in m.attachments),
    )
