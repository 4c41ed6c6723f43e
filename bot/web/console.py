"""The operator's pages: every conversation from the stores, one conversation's transcript and facts, status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.app import App
from bot.pipeline.stages.generate import Generate
from bot.web import pages, why
from bot.web.characters import switch_form
from bot.web.chat import read_capped
from bot.web.forms import fields
from bot.web.pages import esc
from core.llm import OpenAIChat
from core.messages import Incoming
from memory.facts import forget
from memory.store import StoreError
from memory.turns import CONTEXTS_KEPT, SessionKey, parse_session

PER_PAGE = 50
TRANSCRIPT_TURNS = 200
Platforms = Callable[[], dict[str, dict[str, Any]]]


class Console:
    """Routes of the console."""

    def __init__(self, app: App, platforms: Platforms):
        self.app = app
        self.platforms = platforms

    async def status(self, request: Request) -> Response:
        """GET /api/status: fronts, model and memory, for people and monitors (no secret is ever in it)."""
        model = self.app.model
        profile = model.profile if model is not None else None
        breaker_open = any(isinstance(s, Generate) and s.breaker_open for s in self.app.chain.stages)
        memory: dict[str, Any] = {"backend": self.app.store.name, "available": bool(getattr(self.app.store, "available", True))}
        try:
            counts = await self.app.store.sessions(0, 0)
            memory |= {"conversations": counts.total, "turns": counts.turns}
        except StoreError as exc:
            memory |= {"conversations": None, "turns": None, "error": str(exc)}
        cfg = self.app.settings.llm
        return JSONResponse({
            "platforms": self.platforms(),
            "model": {
                "provider": cfg.provider,
                "base_url": cfg.base_url if model is not None else "",
                "server_kind": profile.kind if profile else "offline",
                "model": self.app.answered_by,
                "context": profile.context if profile else 0,
                "reachable": profile.reachable if profile else False,
                "breaker": "open" if breaker_open else "closed",
                "in_flight": model.slots.busy if isinstance(model, OpenAIChat) else 0,
            },
            "memory": memory,
        })

    async def conversations(self, request: Request) -> Response:
        """GET /conversations?page=N&q=TEXT: every stored conversation, most recent first."""
        query = request.query_params.get("q", "")[:100]
        try:
            number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            number = 1
        try:
            found = await self.app.store.sessions((number - 1) * PER_PAGE, PER_PAGE, query)
        except StoreError as exc:
            return HTMLResponse(pages.page("Conversations", f"<p>memory unavailable: {esc(exc)}</p>"), 503)
        rows = []
        for item in found.items:
            key = item.key
            link = f'<a href="/conversation?{esc(urlencode({"key": str(key)}))}">{esc(key.scope)}:{esc(key.id)}</a>'
            name = self._persona_name(key.persona)
            rows.append([esc(key.platform), link, esc(name), esc(pages.when(item.active)), esc(item.turns)])
        last = max(1, -(-found.total // PER_PAGE))
        nav = []
        if number > 1:
            nav.append(f'<a href="/conversations?{esc(urlencode({"page": number - 1, "q": query}))}">newer</a>')
        if number < last:
            nav.append(f'<a href="/conversations?{esc(urlencode({"page": number + 1, "q": query}))}">older</a>')
        body = (
            f"<h1>Conversations</h1><p>{esc(found.total)} conversations, {esc(found.turns)} turns · page "
            f"{esc(number)} of {esc(last)}</p>"
            f'<form method="get" action="/conversations" class="search"><input name="q" value="{esc(query)}" '
            'placeholder="platform, group or user id, character"><button type="submit">Search</button></form>'
            + pages.table(["platform", "where", "character", "last activity", "turns"], rows)
            + f'<p class="pager">{" · ".join(nav)}</p>'
        )
        return HTMLResponse(pages.page("Conversations", body))

    async def conversation(self, request: Request) -> Response:
        """GET /conversation?key=K: transcript with display names, summary, and each speaker's facts."""
        key = parse_session(request.query_params.get("key", ""))
        if key is None:
            return HTMLResponse(pages.page("Conversation", "<p>no such conversation</p>"), 404)
        try:
            turns = await self.app.store.recent(key, TRANSCRIPT_TURNS)
            summary = await self.app.store.summary(key)
            whys = why.by_reply(await self.app.store.contexts(key, CONTEXTS_KEPT), turns)
            # facts are about members: a scene's other characters have none
            speakers = list(dict.fromkeys((t.user_id, t.name) for t in turns if t.role == "user" and t.user_id and not t.speaker))
            books = [(uid, name, await self.app.store.fact_book(key.persona, key.platform, uid)) for uid, name in speakers]
            settings = await self.app.conversations.settings(key.conversation)
            current = self.app.conversations.persona_for(_nobody(key), settings)
            scene = settings.scene
        except StoreError as exc:
            return HTMLResponse(pages.page("Conversation", f"<p>memory unavailable: {esc(exc)}</p>"), 503)
        character = self._persona_name(key.persona)
        lines = "".join(
            f'<div class="line {esc(t.role)}{" character" if t.speaker else ""}"><span class="who">'
            f'{esc(character if t.role == "assistant" else (t.name or t.user_id))}{" (character)" if t.speaker else ""}'
            f'</span> <span class="at">{esc(pages.when(t.at))}</span><span class="text">{esc(t.text)}</span>'
            f'{why.details(whys[t.seq]) if t.seq in whys else ""}</div>'
            for t in turns
        ) or "<p>(no turns kept)</p>"
        cast = list(dict.fromkeys([key.persona, *scene, *(t.speaker for t in turns if t.speaker)]))
        facts = []
        for uid, name, book in books:
            items = "".join(
                f'<li><span class="text">{esc(f.text)}</span>'
                + pages.form("/conversation/forget", {"key": str(key), "user": uid, "fact": str(f.id)}, "forget", "inline")
                + "</li>"
                for f in book.facts
            )
            everything = pages.form("/conversation/forget", {"key": str(key), "user": uid, "fact": "all"}, "forget all") \
                if book.facts else ""
            facts.append(f'<h3>{esc(name or uid)} <small>{esc(uid)}</small></h3><ul class="facts">{items or "<li>(none)</li>"}</ul>{everything}')
        body = (
            f"<h1>{esc(character)} · {esc(key.platform)} {esc(key.scope)}:{esc(key.id)}</h1>"
            + switch_form(key.conversation, current.id, self.app)
            + (self._scene(key, cast) if len(cast) > 1 else "")
            + f'<h2>Summary</h2><p class="text">{esc(summary.text) or "(no summary yet)"}</p>'
            f"<h2>Facts per user</h2>{''.join(facts) or '<p>(no speakers here)</p>'}"
            f'<h2>Transcript (last {TRANSCRIPT_TURNS})</h2><p class="meta">"why" under a reply: what its prompt held '
            f'and its tokens per section (kept for the last {CONTEXTS_KEPT} replies)</p><div id="log">{lines}</div>'
        )
        return HTMLResponse(pages.page("Conversation", body))

    async def forget(self, request: Request) -> Response:
        """POST /conversation/forget key, user, fact (an id or "all"): the character forgets it."""
        body = await read_capped(request, 4096)
        if body is None:
            return Response("too large", 413)
        form = fields(body)
        key = parse_session(form.get("key", ""))
        user, which = form.get("user", ""), form.get("fact", "")
        if key is None or not user or not (which == "all" or which.isdigit()):
            return Response("send key, user and fact (a number or all)", 400)
        await self._forget(key, user, which)
        return RedirectResponse(f"/conversation?{urlencode({'key': str(key)})}", 303)

    async def _forget(self, key: SessionKey, user: str, which: str) -> None:
        if which == "all":
            await self.app.store.forget_user(key.persona, key.platform, user)
            return
        book = await self.app.store.fact_book(key.persona, key.platform, user)
        drop = [f for f in book.facts if f.id == int(which)]
        if drop:
            await self.app.store.change_facts(key.persona, key.platform, user, lambda b: forget(b, drop))

    def _scene(self, key: SessionKey, cast: list[str]) -> str:
        """The scene's characters here, each linking to its own view of the same conversation."""
        views = [esc(self._persona_name(pid)) + " (this view)" if pid == key.persona else
                 f'<a href="/conversation?{esc(urlencode({"key": str(replace(key, persona=pid))}))}">'
                 f"{esc(self._persona_name(pid))}</a>" for pid in cast]
        return f'<p class="scene">Scene: {" · ".join(views)}</p>'

    def _persona_name(self, pid: str) -> str:
        return self.app.personas.get(pid).name if pid in self.app.personas.ids() else pid


def _nobody(key: SessionKey) -> Incoming:
    """A message from no one in the session's conversation (which persona speaks there, by its settings)."""
    return Incoming(key.platform, key.id, key.id, "", "", is_direct=key.scope == "dm", conversation=key.conversation)
