"""The logs page: the bot's recent log lines from the ring `setup_logging` keeps, by level, newest first.

Lines were redacted when they were formatted; they are redacted again here with every configured
secret and this page's own token (which may be made at start, after logging was set up).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot.app import App
from bot.web import pages
from bot.web.pages import esc
from core.logs import Redactor, log_ring

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SHOWN = 500


class LogsPage:
    """Route of the logs page."""

    def __init__(self, app: App, token: Callable[[], str]):
        self.app = app
        self.token = token

    async def index(self, request: Request) -> Response:
        """GET /logs?level=WARNING&q=TEXT: the newest lines at that level or above."""
        level = request.query_params.get("level", "INFO").upper()
        level = level if level in LEVELS else "INFO"
        query = request.query_params.get("q", "")[:100]
        ring = log_ring()
        redact = Redactor([*self.app.settings.secrets(), self.token()])
        options = "".join(f'<option value="{esc(n)}"{" selected" if n == level else ""}>{esc(n)} and above</option>'
                          for n in LEVELS)
        head = (f'<h1>Logs</h1><form method="get" action="/logs" class="search"><select name="level" id="level">{options}'
                f'</select><input name="q" value="{esc(query)}" placeholder="containing"><button type="submit">Show</button></form>')
        if ring is None:
            return HTMLResponse(pages.page("Logs", head + "<p>no log lines kept: this process set up its logging itself</p>"))
        records = ring.recent(logging.getLevelName(level), SHOWN, query)
        lines = "".join(f'<div class="logline {esc(logging.getLevelName(n).lower())}">{esc(redact(text))}</div>'
                        for n, text in records) or "<p>(no lines)</p>"
        body = (head + f'<p class="meta">{esc(len(records))} newest lines of the last {esc(len(ring.records))} kept, '
                f"newest first</p><div id=\"logs\">{lines}</div>")
        return HTMLResponse(pages.page("Logs", body))
