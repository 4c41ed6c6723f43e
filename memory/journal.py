"""The journal: messages received and not yet answered, kept in the store so a stop or crash loses none.

A message is journaled when it arrives, held by the run (one bot process's life) that received it,
and marked done once answered; done marks are kept for a while (the "seen" keys), so a platform's
redelivery is not answered twice. A run says every few seconds that it is alive; the messages held
by a run that stopped saying so are adopted by the next sweep of a live run and answered again,
unless they are older than the caller's cutoff (then they are marked done unanswered).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol, cast

from core.conversation import Conversation, Platform
from core.messages import Attachment, Incoming

# new: journaled now, held by this run. mine: already journaled, now held by this run (a redelivery
# of one of its own, or a message of a run that is gone). busy: a live run holds it. done: answered.
Entered = Literal["new", "mine", "busy", "done"]
VERSION = 1  # the shape of an entry's body


@dataclass(frozen=True, slots=True)
class Route:
    """How a journaled message is answered after a restart: the front that can do it, and the ids it needs."""

    front: str = ""  # "" : no front can answer it once this run is gone
    ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    """One received message: enough to rebuild its Incoming and to reach its platform again."""

    incoming: Incoming
    route: Route
    at: float  # wall-clock time it was received

    @property
    def key(self) -> str:
        """The message's key in the journal (the same as its done mark)."""
        return mark_of(self.incoming)

    def dumps(self) -> str:
        """The entry as JSON."""
        msg = {f.name: getattr(self.incoming, f.name) for f in fields(Incoming) if f.name != "conversation"}
        msg["attachments"] = [asdict(a) for a in self.incoming.attachments]
        where = self.incoming.conversation
        body = {"v": VERSION, "at": self.at, "front": self.route.front, "ids": dict(self.route.ids),
                "incoming": msg, "conversation": [where.platform, where.scope, where.id]}
        return json.dumps(body, ensure_ascii=False)

    @classmethod
    def loads(cls, raw: str) -> Entry:
        """An entry from `dumps`; ValueError when it is not one."""
        try:
            body = json.loads(raw)
            if body.get("v") != VERSION:
                raise ValueError(f"journal entry of version {body.get('v')!r}")
            msg: dict[str, Any] = dict(body["incoming"])
            msg["attachments"] = tuple(Attachment(**a) for a in msg.get("attachments", ()))
            platform, scope, ident = body["conversation"]
            msg["conversation"] = Conversation(cast(Platform, platform), scope, str(ident))
            ids = {str(k): str(v) for k, v in body.get("ids", {}).items()}
            return cls(Incoming(**msg), Route(str(body.get("front", "")), ids), float(body["at"]))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a journal entry: {exc}") from None


def mark_of(msg: Incoming) -> str:
    """A message's key: platform, the bot account that received it, the conversation and the message id."""
    where = msg.conversation
    return f"{where.platform}:{msg.bot_id}:{where.place}:{msg.message_id}"


@dataclass(frozen=True, slots=True)
class Adopted:
    """What a sweep took over from runs that are gone: fresh entries, and how many were too old."""

    entries: tuple[Entry, ...] = ()
    stale: int = 0


class Journal(Protocol):
    """The store's part that keeps messages between arrival and answer; Redis and SQLite alike."""

    async def enter(self, entry: Entry, run: str) -> Entered:
        """Journal a received message for `run` unless it is known (see Entered)."""
        ...

    async def done(self, keys: Sequence[str], keep: float) -> None:
        """Mark messages answered: out of the journal, and seen for `keep` seconds."""
        ...

    async def release(self, key: str, run: str) -> None:
        """Let go of a message `run` holds and could not answer now; the next sweep adopts it."""
        ...

    async def alive(self, run: str, seconds: float) -> None:
        """Say that `run` is alive for the next `seconds`."""
        ...

    async def gone(self, run: str) -> None:
        """Say that `run` has stopped: what it still holds is adopted by the next sweep."""
        ...

    async def adopt(self, run: str, stale_before: float, limit: int, keep: float) -> Adopted:
        """Take over up to `limit` messages held by no live run, oldest first.

        Those received before `stale_before` are not returned: they are marked done (seen for
        `keep` seconds) and counted as stale.
        """
        ...
