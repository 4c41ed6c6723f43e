"""The characters page: every card, a card's edit form, importing a card file, switching a channel's character.

A saved or imported card is written into [personas] import_dir only (which overrides the shipped
folders by id) and the library is read again, so the next reply uses it without a restart. No
name or path from a request reaches the file system: an edit names a card the library already
holds, an import is named after the card's own name.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot.app import App
from bot.commands.handlers import Commands
from bot.commands.table import Access, find, invoke
from bot.web import card_form, pages
from bot.web.chat import read_capped
from bot.web.forms import fields, multipart
from bot.web.pages import esc
from core.conversation import Conversation, Platform, Scope
from core.messages import Incoming
from memory.store import StoreError
from persona.card import Persona
from persona.importer import import_card_bytes, save_card
from persona.library import CardInvalid, PersonaError, check_card

FORM_BYTES = 256 * 1024  # a card's text fields; far more than any card needs
IMPORT_BYTES = 8 * 1024 * 1024  # a card file (a PNG card carries its picture)
EXCERPT = 160


class Characters:
    """Routes of the characters page."""

    def __init__(self, app: App):
        self.app = app

    @property
    def import_dir(self) -> Path:
        """Where edited and imported cards are written."""
        return self.app.settings.personas.import_dir

    async def index(self, request: Request) -> Response:
        """GET /characters: a card per character, the import form, the switch form."""
        lib = self.app.personas
        cards = "".join(self._card(lib.get(pid)) for pid in lib.ids())
        choices = "".join(f'<option value="{esc(pid)}">{esc(lib.get(pid).name)}</option>' for pid in lib.ids())
        platforms = "".join(f'<option value="{esc(p)}">{esc(p)}</option>' for p in get_args(Platform))
        body = (
            f'<h1>Characters</h1><div class="cards">{cards}</div>'
            '<h2>Import a card</h2><p>A Character Card V2/V3 file (.json, or .png with the card inside), at most '
            f'{IMPORT_BYTES // (1024 * 1024)} MB. It is saved under a name made from the card\'s name.</p>'
            '<form method="post" action="/characters/import" enctype="multipart/form-data" class="stack">'
            '<input type="file" name="card" id="card-file" accept=".json,.png,application/json,image/png">'
            '<button type="submit">Import</button></form>'
            "<h2>Switch a channel's character</h2><p>Like <code>/persona set</code> typed there by an admin.</p>"
            '<form method="post" action="/characters/switch" class="stack">'
            f'<label for="sw-platform">Platform</label><select id="sw-platform" name="platform">{platforms}</select>'
            '<label for="sw-scope">Where</label><select id="sw-scope" name="scope">'
            '<option value="group">a group or channel</option><option value="dm">a private chat</option></select>'
            '<label for="sw-id">Group, channel or user id</label><input id="sw-id" name="id" maxlength="200">'
            f'<label for="sw-persona">Character</label><select id="sw-persona" name="persona">{choices}</select>'
            '<button type="submit">Switch</button></form>'
        )
        return HTMLResponse(pages.page("Characters", body))

    def _card(self, persona: Persona) -> str:
        card = persona.card
        about = persona.render(card.description.strip())
        about = about if len(about) <= EXCERPT else about[:EXCERPT] + "…"
        tags = " · ".join(card.tags)
        where = "edited or imported" if self._imported(persona) else "shipped"
        link = f"/character?{urlencode({'id': persona.id})}"
        return (f'<div class="card"><h3><a href="{esc(link)}">{esc(persona.name)}</a> <small>{esc(persona.id)}</small></h3>'
                f'<p class="text">{esc(about)}</p><p class="meta">{esc(tags)}</p>'
                f'<p class="meta">{esc(len(persona.greetings()))} greetings · {esc(len(card.lorebook))} lore entries · '
                f"{esc(where)}</p></div>")

    def _imported(self, persona: Persona) -> bool:
        return persona.folder.parent.resolve() == self.import_dir.resolve()

    async def edit(self, request: Request) -> Response:
        """GET /character?id=ID: the card's edit form."""
        pid = request.query_params.get("id", "")
        if pid not in self.app.personas:
            return HTMLResponse(pages.page("Character", "<p>no such character</p>"), 404)
        persona = self.app.personas.get(pid)
        values = card_form.shown(persona.card.model_dump(by_alias=True, mode="json"))
        note = {"1": "Saved: the next reply uses it."}.get(request.query_params.get("saved", ""), "")
        return HTMLResponse(self._edit_page(persona, values, {}, [], note))

    def _edit_page(self, persona: Persona, values: dict[str, str], problems: dict[str, str], rest: list[str],
                   note: str) -> str:
        where = ("This card was edited or imported here." if self._imported(persona) else
                 "This card ships with the bot; saving keeps your copy in the import folder, which takes its place.")
        said = f'<p class="note" id="saved">{esc(note)}</p>' if note else ""
        listed = "".join(f"<li>{esc(p)}</li>" for p in rest)
        wrong = f'<div class="error" id="problems"><p>The card was not saved:</p><ul>{listed}</ul></div>' \
            if problems or rest else ""
        body = (f"<h1>{esc(persona.name)} <small>{esc(persona.id)}</small></h1>{said}{wrong}<p>{esc(where)} "
                "Voice, glossary, lorebook and sources stay as they are.</p>"
                + card_form.form(persona.id, values, problems))
        return pages.page(f"Character {persona.name}", body)

    async def save(self, request: Request) -> Response:
        """POST /character/save: check the form as a card; write it to the import folder; read the cards again."""
        body = await read_capped(request, FORM_BYTES)
        if body is None:
            return HTMLResponse(pages.page("Character", "<p>the form is too large</p>"), 413)
        form = fields(body)
        pid = form.get("id", "")
        if pid not in self.app.personas:
            return HTMLResponse(pages.page("Character", "<p>no such character</p>"), 404)
        persona = self.app.personas.get(pid)
        table = card_form.merged(persona.card.model_dump(by_alias=True, mode="json"), form)
        if not self._imported(persona):  # the copy lives elsewhere: its sources keep naming the same files
            table["knowledge"]["sources"] = [str((persona.folder / s).resolve()) for s in persona.card.knowledge.sources]
        try:
            card = check_card(table, f"card {pid}")
        except CardInvalid as exc:
            mine, rest = card_form.problems_by_field(exc.problems)
            values = card_form.shown(persona.card.model_dump(by_alias=True, mode="json")) | {
                k: v for k, v in form.items() if k in {f.key for f in card_form.FIELDS}}
            if mine and not rest:
                rest = [f"{label}: {mine[key]}" for key, label in ((f.key, f.label) for f in card_form.FIELDS) if key in mine]
            return HTMLResponse(self._edit_page(persona, values, mine, rest, ""), 400)
        try:
            save_card(card, self.import_dir, pid)
            self.app.personas.reload()
        except (PersonaError, OSError) as exc:
            return HTMLResponse(pages.page("Character", f"<p>not saved: {esc(exc)}</p>"), 500)
        return RedirectResponse(f"/character?{urlencode({'id': pid, 'saved': '1'})}", 303)

    async def upload(self, request: Request) -> Response:
        """POST /characters/import (multipart, field "card"): the card joins the library under a new id."""
        body = await read_capped(request, IMPORT_BYTES)
        if body is None:
            return _problem(f"the file is larger than {IMPORT_BYTES // (1024 * 1024)} MB", 413)
        parts = multipart(body, request.headers.get("content-type", ""))
        data = next((p.data for p in parts or [] if p.name == "card"), b"")
        if not data:
            return _problem("choose a card file (.json or .png) to import", 400)
        try:
            target = import_card_bytes(data, "the uploaded card", self.import_dir, self.app.personas.ids())
            self.app.personas.reload()
        except PersonaError as exc:
            return _problem(str(exc), 400)
        return RedirectResponse(f"/character?{urlencode({'id': target.parent.name})}", 303)

    async def switch(self, request: Request) -> Response:
        """POST /characters/switch platform, scope, id, persona: `/persona set` in that channel, as its admin would."""
        body = await read_capped(request, 4096)
        if body is None:
            return _problem("too large", 413)
        form = fields(body)
        platform, scope, ident, pid = (form.get(k, "").strip() for k in ("platform", "scope", "id", "persona"))
        if platform not in get_args(Platform) or scope not in get_args(Scope) or not ident or len(ident) > 200:
            return _problem("name the platform, group or private chat, and its id", 400)
        where = Conversation(platform, scope, ident)  # type: ignore[arg-type]
        msg = Incoming(where.platform, ident, ident if scope == "dm" else "console", "", "", is_direct=scope == "dm",
                       conversation=where)
        found = find(["persona", "set", pid])
        assert found is not None  # the table has /persona set
        try:
            answer = await invoke(Commands(self.app), msg, found[0], found[1], Access(admin=True))
        except StoreError as exc:
            return _problem(f"memory unavailable: {exc}", 503)
        if not answer.ok:
            return _problem(answer.text, 400)
        link = f"/conversation?{urlencode({'key': f'{pid}:{where.key}'})}"
        body_html = (f"<h1>Switched</h1><p>{esc(where.key)} now speaks as {esc(self.app.personas.get(pid).name)}.</p>"
                     f'<p>Its greeting there: <span class="text">{esc(answer.text)}</span></p>'
                     f'<p><a href="{esc(link)}">its conversation</a> · <a href="/characters">characters</a></p>')
        return HTMLResponse(pages.page("Switched", body_html))


def _problem(text: str, status: int) -> Response:
    body = f'<h1>Characters</h1><p class="error">{esc(text)}</p><p><a href="/characters">back</a></p>'
    return HTMLResponse(pages.page("Characters", body), status)


def switch_form(where: Conversation, current: str, app: App) -> str:
    """The conversation page's form: which character speaks in this channel."""
    lib = app.personas
    options = "".join(f'<option value="{esc(pid)}"{" selected" if pid == current else ""}>{esc(lib.get(pid).name)}</option>'
                      for pid in lib.ids())
    hidden = "".join(f'<input type="hidden" name="{k}" value="{esc(v)}">'
                     for k, v in (("platform", where.platform), ("scope", where.scope), ("id", where.id)))
    return (f'<form method="post" action="/characters/switch" class="search" id="switch">{hidden}'
            f'<label for="sw-persona">Character here</label><select id="sw-persona" name="persona">{options}</select>'
            '<button type="submit">Switch</button></form>')
