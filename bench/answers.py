"""Reading the messages a bot sent back to the bench's OneBot side: which answers which, quoted or not.

Every sent message is one of: the first part of an answer (it quotes the message it answers, or, a
model reply, names the numbers of the messages it answers), a later part of a split answer (no
quote; at most `parts` per answer), a busy notice (one of the character's busy lines), or an answer
without a quote (an unquoted message that is none of these).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.load import echoed, pct

Sent = list[tuple[float, dict[str, Any]]]


@dataclass
class Tally:
    """Which replies answered which messages, and how."""

    first_id: int  # message id of sequence number 0
    group0: int  # group id of group 0
    busy_lines: frozenset[str] = frozenset()
    parts: int = 3  # [pacing] max_messages: a split answer's later parts carry no quote
    pushed: dict[int, float] = field(default_factory=dict)  # sequence number -> when it was sent
    answers: dict[int, list[int]] = field(default_factory=dict)  # sequence number -> replies answering it
    by_model: set[int] = field(default_factory=set)  # sequence numbers a model reply answered
    out_of_order: int = 0
    unquoted: int = 0
    busy: int = 0

    def read(self, sent: Sent) -> None:
        """Match every reply to its messages; a group's answers must come in its messages' order."""
        last_in_group: dict[int, int] = {}
        open_parts: dict[int, int] = {}  # group -> parts of the answer being sent there
        for r, (_, params) in enumerate(sent):
            segments = params.get("message") or []
            group = int(params.get("group_id", self.group0)) - self.group0
            quoted = [int(s["data"]["id"]) - self.first_id for s in segments if s.get("type") == "reply"]
            said = "".join(str(s["data"].get("text", "")) for s in segments if s.get("type") == "text").strip()
            if said and any(line.startswith(said) for line in self.busy_lines):
                self.busy += 1
                self.unquoted += not quoted
                open_parts[group] = 1
                continue
            echo = echoed(said)
            if not quoted and not echo:
                if open_parts.get(group, self.parts) < self.parts:
                    open_parts[group] += 1  # a later part of a split answer
                else:
                    self.unquoted += 1
                continue
            self.unquoted += not quoted
            open_parts[group] = 1
            self.by_model.update(echo)
            covered = set(quoted) | set(echo)
            for seq in covered:
                self.answers.setdefault(seq, []).append(r)
            newest = max(covered)
            if newest < last_in_group.get(group, -1):
                self.out_of_order += 1
            last_in_group[group] = max(newest, last_in_group.get(group, -1))

    def latencies(self, sent: Sent, messages: int, groups: int) -> tuple[list[float], dict[int, list[float]]]:
        """Seconds from each answered message to its answer: all, and by group."""
        every: list[float] = []
        by_group: dict[int, list[float]] = {}
        for seq in range(messages):
            if self.answers.get(seq):
                seconds = sent[self.answers[seq][0]][0] - self.pushed[seq]
                every.append(seconds)
                by_group.setdefault(seq % groups, []).append(seconds)
        return every, by_group


def spread(by_group: dict[int, list[float]]) -> float:
    """The slowest group's median latency over the fastest group's."""
    medians = [pct(v, 0.5) for v in by_group.values() if v]
    return max(medians) / min(medians) if medians and min(medians) > 0 else float("nan")
