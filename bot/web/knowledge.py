"""The knowledge page: each character's indexed sources, and re-ingesting them with progress.

A re-ingest reads the files the index already holds (put there by `python -m bot ingest`) and the
card's [knowledge] sources, never a path from the request; it runs in a thread, one per character
at a time, and the running bot picks up the new index by itself once it is saved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.app import App
from bot.web import pages
from bot.web.chat import read_capped
from bot.web.forms import fields
from bot.web.pages import esc
from core.logs import Redactor
from memory.knowledge import ingested, ingestor_for
from memory.knowledge.embedders import open_embedder
from persona.card import Persona

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One re-ingest: where it is (stage, done of total) and how it ended."""

    persona: str
    stage: str = "starting"
    done: int = 0
    total: int = 0
    state: str = "running"  # running | done | failed
    message: str = ""
    started: float = 0.0
    finished: float = 0.0

    def told(self, stage: str, done: int, total: int) -> None:
        """Progress from the ingesting thread."""
        self.stage, self.done, self.total = stage, done, total


class KnowledgePage:
    """Routes of the knowledge page."""

    def __init__(self, app: App):
        self.app = app
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def sources(self, persona: Persona) -> list[Path]:
        """What a re-ingest reads: the card's sources, then every file in the index that is still there."""
        named = [persona.folder / s for s in persona.card.knowledge.sources]
        known = [Path(row.key) for row in ingested(self.app.settings, persona.id)]
        return list(dict.fromkeys(p for p in [*named, *known] if p.exists()))

    async def index(self, request: Request) -> Response:
        """GET /knowledge: per character, the files in its index and a re-ingest button with progress."""
        cfg = self.app.settings.knowledge
        state = "on" if cfg.enabled else "off ([knowledge] enabled = false): replies use no source passages"
        blocks = []
        for pid in self.app.personas.ids():
            persona = self.app.personas.get(pid)
            rows = await asyncio.to_thread(ingested, self.app.settings, pid)
            table = pages.table(["file", "chunks", "complete"], [
                [esc(r.name), esc(r.chunks), "yes" if r.done else "no (ingest again to finish)"] for r in rows
            ]) if rows else "<p>nothing ingested yet: <code>python -m bot ingest --persona " + esc(pid) + " FILES</code></p>"
            named = ", ".join(persona.card.knowledge.sources)
            button = pages.form("/knowledge/ingest", {"id": pid}, "Re-ingest") if rows or named else ""
            job = self.jobs.get(pid)
            progress = f'<p class="progress" data-persona="{esc(pid)}">{esc(_said(job))}</p>'
            blocks.append(f'<section class="kb"><h2>{esc(persona.name)} <small>{esc(pid)}</small></h2>'
                          f'<p class="meta">card sources: {esc(named or "none")} · {esc(len(persona.card.lorebook))} lore entries</p>'
                          f"{table}{button}{progress}</section>")
        body = (f"<h1>Knowledge</h1><p>Retrieval is {esc(state)}; mode {esc(cfg.mode)}.</p>" + "".join(blocks))
        return HTMLResponse(pages.page("Knowledge", body, script="knowledge.js"))

    async def progress(self, request: Request) -> Response:
        """GET /api/knowledge: every re-ingest of this run, for the page to show as it goes."""
        return JSONResponse({pid: asdict(job) | {"said": _said(job)} for pid, job in self.jobs.items()})

    async def ingest(self, request: Request) -> Response:
        """POST /knowledge/ingest id=ID: re-ingest that character's sources in the background."""
        body = await read_capped(request, 4096)
        pid = fields(body or b"").get("id", "")
        if pid not in self.app.personas:
            return HTMLResponse(pages.page("Knowledge", "<p>no such character</p>"), 404)
        running = self.jobs.get(pid)
        if running is None or running.state != "running":
            persona = self.app.personas.get(pid)
            job = self.jobs[pid] = Job(pid, started=time.time())
            task = asyncio.create_task(self._run(job, persona), name=f"ingest-{pid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return RedirectResponse("/knowledge", 303)

    async def _run(self, job: Job, persona: Persona) -> None:
        paths = self.sources(persona)
        if not paths:
            job.state, job.message, job.finished = "failed", "no source files to read (none listed, none found)", time.time()
            return
        try:
            job.message = await asyncio.to_thread(self._ingest, job, persona, paths)
            job.state = "done"
        except Exception as exc:  # the page tells; the bot goes on with the index it had
            log.warning("re-ingest of %s failed: %s", persona.id, exc)
            job.state, job.message = "failed", Redactor(self.app.settings.secrets())(str(exc))
        job.finished = time.time()

    def _ingest(self, job: Job, persona: Persona, paths: list[Path]) -> str:
        cfg = self.app.settings.knowledge
        embedder = open_embedder(cfg) if cfg.mode != "bm25" else None
        try:
            ingestor = ingestor_for(self.app.settings, persona, embedder, cfg.mode if embedder else "bm25",
                                    progress=False, on_progress=job.told)
            return "; ".join(ingestor.run(paths).lines())
        finally:
            if embedder is not None:
                embedder.close()


def _said(job: Job | None) -> str:
    """A job's state in words."""
    if job is None:
        return ""
    if job.state == "running":
        part = f" {job.done} of {job.total}" if job.total else ""
        return f"re-ingesting: {job.stage}{part}…"
    if job.state == "failed":
        return f"re-ingest failed: {job.message}"
    return f"re-ingested at {pages.when(job.finished)}: {job.message}"
