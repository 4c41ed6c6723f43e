"""Server-rendered HTML: every value from a store, a user or a card passes through `esc` on its way in.

No templates engine: a handful of small functions build the pages, and `esc` (html.escape, quotes
included) is the only way text enters them. Scripts and styles come from /static only (the CSP
forbids inline ones).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable

NAV = (("/chat", "Chat"), ("/conversations", "Conversations"), ("/characters", "Characters"), ("/knowledge", "Knowledge"),
       ("/logs", "Logs"), ("/api/status", "Status"))


def esc(value: object) -> str:
    """Text as HTML text or attribute value: nothing in it can become markup."""
    return html.escape(str(value), quote=True)


def when(at: float) -> str:
    """A stored time as local date and time ("-" when unknown)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at > 0 else "-"


def page(title: str, body: str, *, nav: bool = True, script: str = "") -> str:
    """A whole page around `body` (already HTML)."""
    links = "".join(f'<a href="{esc(href)}">{esc(name)}</a>' for href, name in NAV) if nav else ""
    tag = f'<script src="/static/{esc(script)}" defer></script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)}</title><link rel="stylesheet" href="/static/style.css">{tag}</head>'
        f'<body><header><nav>{links}</nav></header><main>{body}</main></body></html>'
    )


def form(action: str, fields: dict[str, str], label: str, css: str = "") -> str:
    """A POST form with hidden fields and one button."""
    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items())
    cls = f' class="{esc(css)}"' if css else ""
    return f'<form method="post" action="{esc(action)}"{cls}>{hidden}<button type="submit">{esc(label)}</button></form>'


def table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table; the cells are HTML already (escape text with `esc` first)."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def login_needed() -> str:
    """The page for a visitor without a session."""
    body = ("<h1>Log in</h1><p>Open the login link the bot printed on its console when it started: "
            "<code>http://HOST:PORT/?token=…</code>. Scripts send <code>Authorization: Bearer TOKEN</code>.</p>")
    return page("Log in", body, nav=False)


def chat(personas: Iterable[tuple[str, str]], current: str, lines: Iterable[tuple[str, str, str]]) -> str:
    """The chat page: earlier lines (role, name, text), the character picker and the text box."""
    options = "".join(
        f'<option value="{esc(pid)}"{" selected" if pid == current else ""}>{esc(name)}</option>'
        for pid, name in personas
    )
    shown = "".join(
        f'<div class="line {esc(role)}"><span class="who">{esc(name)}</span><span class="text">{esc(text)}</span></div>'
        for role, name, text in lines
    )
    body = (
        f'<div class="bar"><label for="persona">Character</label><select id="persona">{options}</select></div>'
        f'<div id="log" aria-live="polite">{shown}</div>'
        '<form id="say"><textarea id="text" rows="2" maxlength="4000" '
        'placeholder="Write a message (Enter sends, Shift+Enter: new line; /help lists commands)"></textarea>'
        '<button type="submit">Send</button></form>'
    )
    return page("Chat", body, script="chat.js")
