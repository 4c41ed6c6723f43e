"""A card is data from anyone: an upload or an edit cannot name files or addresses for the process to read,
its avatar is never a local or private address, and a broken or oversized file is a clear 400/413, never a 500."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import struct
import tomllib
import zlib

import httpx
import pytest

from persona.importer import PNG_MAGIC
from persona.library import CardInvalid, check_card
from tests.web.support import Page

PASSWD = ["../../../../etc/passwd", "/etc/passwd", "file:///etc/passwd", "http://127.0.0.1:1/x.txt"]


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk (the CRC is not checked by card readers)."""
    return struct.pack(">I4s", len(body), kind) + body + b"\0\0\0\0"


def png(*chunks: bytes) -> bytes:
    """A PNG file of these chunks."""
    return PNG_MAGIC + b"".join(chunks) + chunk(b"IEND", b"")


async def import_card(client: httpx.AsyncClient, data: bytes, name: str = "c.json") -> httpx.Response:
    """POST a card file as the import form does."""
    return await client.post("/characters/import", files={"card": (name, data, "application/octet-stream")})


async def test_an_uploaded_card_cannot_name_files_or_addresses_for_the_process(page: Page,
                                                                               client: httpx.AsyncClient) -> None:
    hostile = {"knowledge": {"sources": PASSWD}, "sources": PASSWD, "avatar": "file:///etc/passwd"}
    card = {"spec": "chara_card_v3", **hostile, "data": {
        "name": "Sneaky", "description": "d", **hostile, "extensions": hostile,
        "assets": [{"type": "icon", "uri": "file:///etc/passwd", "name": "main"}]}}
    r = await import_card(client, json.dumps(card).encode())
    assert r.status_code == 303
    pid = r.headers["location"].split("id=")[1]
    written = (page.app.settings.personas.import_dir / pid / "card.toml").read_text(encoding="utf-8")
    assert "passwd" not in written and "127.0.0.1" not in written
    sneaky = page.app.personas.get(pid).card
    assert sneaky.knowledge.sources == [] and sneaky.avatar == ""
    # the edit form has no such fields: sent anyway, they change nothing
    form = {"id": pid, "name": "Sneaky", "knowledge.sources": "/etc/passwd", "avatar": "file:///etc/passwd"}
    assert (await client.post("/character/save", data=form)).status_code == 303
    saved = tomllib.loads((page.app.settings.personas.import_dir / pid / "card.toml").read_text(encoding="utf-8"))
    assert "passwd" not in json.dumps(saved)
    # a re-ingest reads only what the card names: nothing
    assert (await client.post("/knowledge/ingest", data={"id": pid})).status_code == 303
    async with asyncio.timeout(10):
        while (job := (await client.get("/api/knowledge")).json()[pid])["state"] == "running":
            await asyncio.sleep(0.05)
    assert job["state"] == "failed" and "no source files" in job["message"]


@pytest.mark.parametrize("avatar", ["file:///etc/passwd", "http://127.0.0.1/a.png", "http://localhost:8765/a.png",
                                    "http://169.254.169.254/latest/meta-data", "http://[::ffff:10.0.0.1]/a.png",
                                    "http://2130706433/a.png", "http://0x7f.1/a.png", "https://192.168.1.2/a.png",
                                    "ftp://example.com/a.png", "javascript:alert(1)", "//example.com/a.png"])
def test_an_avatar_the_bot_would_hand_to_discord_is_public_http_only(avatar: str) -> None:
    with pytest.raises(CardInvalid) as refused:
        check_card({"name": "x", "avatar": avatar}, "card x")
    assert refused.value.problems[0][0] == "avatar"
    assert check_card({"name": "x", "avatar": "https://cdn.example.com/a.png"}, "card x").avatar.startswith("https://")


async def test_broken_or_oversized_card_files_get_a_clear_answer_not_a_500(page: Page, client: httpx.AsyncClient) -> None:
    good = base64.b64encode(json.dumps({"name": "Pngcard"}).encode())
    bomb = zlib.compress(b"A" * 100_000_000, 9)  # about 100 kB that unpacks to 100 MB
    cases = {
        "invalid JSON": (b"{\"name\": ", "not a card"),
        "JSON that is not an object": (b"[1, 2]", "not a card"),
        "a card with no name": (b"{\"spec\": \"chara_card_v2\", \"data\": []}", "data"),
        "a PNG without a card": (png(chunk(b"tEXt", b"Comment\0hello")), "no 'chara'"),
        "a truncated PNG": (PNG_MAGIC + struct.pack(">I4s", 500, b"tEXt") + b"chara\0", "truncated"),
        "a zTXt chunk that is not zlib": (png(chunk(b"zTXt", b"chara\0\0not zlib")), "broken zTXt"),
        "an iTXt chunk cut short": (png(chunk(b"iTXt", b"chara")), "broken iTXt"),
        "an iTXt chunk that is not UTF-8": (png(chunk(b"iTXt", b"chara\0\0\0\0\0\xff\xfe")), "broken iTXt"),
        "a chunk that unpacks into gigabytes": (png(chunk(b"zTXt", b"chara\0\0" + bomb)), "unpacks to more than"),
        "a chunk that is not base64 of JSON": (png(chunk(b"tEXt", b"chara\0%%%")), "not a card"),
    }
    for what, (data, said) in cases.items():
        r = await import_card(client, data, "c.png")
        assert r.status_code == 400 and said in html.unescape(r.text), (what, r.status_code, r.text[-300:])
    r = await import_card(client, png(chunk(b"zTXt", b"chara\0\0" + zlib.compress(good))), "c.png")
    assert r.status_code == 303 and page.app.personas.get("pngcard").name == "Pngcard"
    r = await import_card(client, png(chunk(b"tEXt", b"Comment\0" + b"x" * (8 * 1024 * 1024)), chunk(b"tEXt", b"chara\0" + good)))
    assert r.status_code == 413 and "larger than 8 MB" in r.text
    r = await client.post("/characters/import", content=b"--x\r\n" * 10, headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400
