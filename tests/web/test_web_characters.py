"""The characters page over real HTTP: edit with validation, import an upload, switch a channel's character."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import httpx

from core.messages import Incoming
from tests.conftest import ROOT, MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.web.support import HOSTILE_NAME, Page, logged_in, running_page, web_section

SHIPPED = ROOT / "persona" / "horo" / "card.toml"


def card_json(name: str, **more: object) -> bytes:
    data = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": name, "description": "A quiet ferryman.", "first_mes": "Hm.", **more}}
    return json.dumps(data).encode()


async def test_a_bad_edit_names_each_wrong_field_and_writes_nothing(page: Page, client: httpx.AsyncClient) -> None:
    form = {"id": "horo", "name": "  ", "reply_size.group.max": "lots", "reply_size.private.typical": "0"}
    r = await client.post("/character/save", data=form)
    assert r.status_code == 400
    assert 'id="f-name-error"' in r.text and "at least 1 character" in r.text
    assert 'id="f-reply_size-group-max-error"' in r.text and "valid integer" in r.text
    assert 'id="f-reply_size-private-typical-error"' in r.text and "greater than or equal to 1" in r.text
    assert 'value="lots"' in r.text  # what was typed stays in the form
    assert not (page.app.settings.personas.import_dir / "horo").exists()
    assert page.app.personas.get("horo").name == "赫萝"


async def test_a_saved_edit_reaches_the_next_prompt_without_a_restart(page: Page, client: httpx.AsyncClient,
                                                                     llm: FakeOpenAI) -> None:
    shipped = SHIPPED.read_bytes()
    await page.app.chain.handle(Incoming("test", "c1", "u1", "Al", "你好", message_id="m1", is_direct=True))
    assert "灯塔守夜人" not in llm.requests[-1]["messages"][0]["content"]
    r = await client.post("/character/save", data={"id": "horo", "system_prompt": "你是{{char}}，今晚兼任灯塔守夜人。",
                                                    "nickname": "赫萝, 贤狼，Holo"})
    assert r.status_code == 303 and r.headers["location"] == "/character?id=horo&saved=1"
    written = tomllib.loads((page.app.settings.personas.import_dir / "horo" / "card.toml").read_text("utf-8"))
    assert written["system_prompt"] == "你是{{char}}，今晚兼任灯塔守夜人。" and written["nickname"] == ["赫萝", "贤狼", "Holo"]
    assert written["lorebook"] and written["description"]  # what the form does not show stays
    assert page.app.personas.get("horo").folder == page.app.settings.personas.import_dir / "horo"
    assert SHIPPED.read_bytes() == shipped  # the shipped card is untouched
    await page.app.chain.handle(Incoming("test", "c1", "u1", "Al", "还在吗", message_id="m2", is_direct=True))
    assert llm.requests[-1]["messages"][0]["content"].startswith("你是赫萝，今晚兼任灯塔守夜人。")
    shown = await client.get("/character?id=horo&saved=1")
    assert "Saved" in shown.text and "edited or imported" in shown.text


async def test_an_upload_is_imported_under_a_name_from_the_card(page: Page, client: httpx.AsyncClient,
                                                                tmp_path: Path) -> None:
    files = {"card": ("../../../outside.json", card_json("Old Ferryman"), "application/json")}
    r = await client.post("/characters/import", files=files)
    assert r.status_code == 303 and r.headers["location"] == "/character?id=old-ferryman"
    root = page.app.settings.personas.import_dir
    assert (root / "old-ferryman" / "card.toml").is_file()
    assert not list(tmp_path.rglob("outside*")) and not (ROOT / "outside.json").exists()
    assert page.app.personas.get("old-ferryman").name == "Old Ferryman"
    # a card named like a shipped one gets a new id: nothing is replaced
    r = await client.post("/characters/import", files={"card": ("horo.json", card_json("Horo"), "application/json")})
    assert r.headers["location"] == "/character?id=horo-2"
    assert page.app.personas.get("horo").name == "赫萝"
    listing = await client.get("/characters")
    assert "Old Ferryman" in listing.text and "horo-2" in listing.text


async def test_uploads_that_are_not_cards_or_too_large_are_refused(page: Page, client: httpx.AsyncClient) -> None:
    r = await client.post("/characters/import", files={"card": ("x.json", b"not json", "application/json")})
    assert r.status_code == 400 and "not a card" in r.text
    hostile = card_json(HOSTILE_NAME)
    r = await client.post("/characters/import", files={"card": ("x.json", hostile, "application/json")})
    assert r.status_code == 303
    listing = await client.get("/characters")
    assert HOSTILE_NAME not in listing.text and "&lt;img src=x onerror=alert(1)&gt;" in listing.text
    big = b"{" + b" " * (9 * 1024 * 1024) + b"}"
    r = await client.post("/characters/import", files={"card": ("big.json", big, "application/json")})
    assert r.status_code == 413
    r = await client.post("/characters/import", data={"nothing": "here"})
    assert r.status_code == 400
    imported = sorted(p.name for p in page.app.settings.personas.import_dir.iterdir())
    assert imported == ["img-src-x-onerror-alert-1"]  # only the hostile-named card, under a name made of its words


async def test_switching_a_channel_works_like_the_persona_command(page: Page, client: httpx.AsyncClient,
                                                                  llm: FakeOpenAI) -> None:
    r = await client.post("/characters/switch", data={"platform": "qq", "scope": "group", "id": "12345", "persona": "yexiu"})
    assert r.status_code == 200 and "qq:group:12345" in r.text
    assert (await page.app.store.settings(Incoming("qq", "12345", "7", "", "").conversation))["persona"] == "yexiu"
    llm.push(Script(text="嗯。"))
    reply = await page.app.chain.handle(Incoming("qq", "12345", "7", "A", "叶修 在吗", message_id="q1", mentions_bot=True))
    assert reply is not None and reply.persona_id == "yexiu"
    shown = await client.get("/conversation?key=yexiu:qq:group:12345")
    assert '<option value="yexiu" selected>' in shown.text
    r = await client.post("/characters/switch", data={"platform": "qq", "scope": "group", "id": "12345", "persona": "nobody"})
    assert r.status_code == 400 and "No persona" in r.text
    r = await client.post("/characters/switch", data={"platform": "irc", "scope": "group", "id": "1", "persona": "horo"})
    assert r.status_code == 400


async def test_an_edited_copy_keeps_reading_the_same_source_files(make_settings: MakeSettings, tmp_path: Path,
                                                                  llm: FakeOpenAI) -> None:
    shipped = tmp_path / "cards"
    shutil.copytree(ROOT / "persona" / "wukong", shipped / "wukong")
    card = (shipped / "wukong" / "card.toml").read_text("utf-8").replace("sources = []", 'sources = ["xiyou.txt"]')
    (shipped / "wukong" / "card.toml").write_text(card, "utf-8")
    settings = make_settings(llm={"base_url": llm.base_url, "model": "m"}, web=web_section(),
                             personas={"dirs": [str(shipped)]}, bot={"default_persona": "wukong"})
    async with running_page(settings) as started, logged_in(started) as client:
        r = await client.post("/character/save", data={"id": "wukong", "personality": "急躁。"})
        assert r.status_code == 303
        copy = started.app.personas.get("wukong")
        assert copy.folder == settings.personas.import_dir / "wukong"
        assert [copy.folder / s for s in copy.card.knowledge.sources] == [(shipped / "wukong" / "xiyou.txt").resolve()]
