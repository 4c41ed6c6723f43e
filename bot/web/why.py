"""A reply's "why" on the conversation page: what reached its prompt, and the prompt's tokens per section.

Drawn from the same record `/why` reads (the store keeps it for the last CONTEXTS_KEPT replies);
shown as text in a <details> element, so it opens without any script.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.commands.handlers import WHY_KINDS
from bot.web.pages import esc
from memory.turns import LastContext, Turn

SECTION_NAMES = {
    "system": "system prompt and card", "turns": "recent turns", "earlier notes": "notes of earlier turns",
    "summary": "summary", "facts": "facts", "memories": "recalled turns", "lore": "lore", "passages": "source passages",
    "scenes": "the character's own scenes", "message": "the message", "reminder": "reminder",
}


def by_reply(contexts: Iterable[LastContext], turns: Iterable[Turn]) -> dict[int, LastContext]:
    """Each kept context under the seq of the reply it belongs to (a record without a seq: by its time)."""
    at_seq = {t.at: t.seq for t in turns if t.role == "assistant"}
    out: dict[int, LastContext] = {}
    for ctx in contexts:
        seq = ctx.seq or at_seq.get(ctx.at, 0)
        if seq and seq not in out:
            out[seq] = ctx
    return out


def details(ctx: LastContext) -> str:
    """The "why" of one reply, as a closed <details> block."""
    if ctx.mode != "model":
        body = f"<p>{esc(_mode(ctx.mode))}: no model was asked, so it was given nothing.</p>"
    else:
        total = sum(n for _, n in ctx.tokens)
        rows = "".join(f"<tr><td>{esc(SECTION_NAMES.get(name, name))}</td><td>{esc(n)}</td></tr>" for name, n in ctx.tokens)
        tokens = (f'<table class="tokens"><thead><tr><th>prompt section</th><th>tokens</th></tr></thead>'
                  f"<tbody>{rows}<tr><td>total</td><td>{esc(total)}</td></tr></tbody></table>") if ctx.tokens else ""
        cited = []
        for kind, title in WHY_KINDS:
            items = [c for c in ctx.cited if c.kind == kind]
            if items:
                listed = "".join(f'<li><span class="at">{esc(c.source)}</span> <span class="text">{esc(c.text)}</span></li>'
                                 if c.source else f'<li><span class="text">{esc(c.text)}</span></li>' for c in items)
                cited.append(f"<h4>{esc(title)}</h4><ul>{listed}</ul>")
        given = "".join(cited) or "<p>only the recent conversation: no memories, facts, lore or passages</p>"
        body = tokens + given
    answered = f"to {ctx.name or ctx.user_id or 'someone'}: {ctx.message}"
    return (f'<details class="why"><summary>why</summary><p class="meta text">{esc(answered)}</p>{body}</details>')


def _mode(mode: str) -> str:
    return {"offline": "an example line of the character's", "fallback": "an example line standing in for the model",
            "canned": "a short line of the character's", "reaction": "a reaction"}.get(mode, mode)
