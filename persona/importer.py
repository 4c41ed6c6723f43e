"""Import SillyTavern Character Card V2/V3 files (.json, or .png with a `chara`/`ccv3` chunk)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from core.files import write_private
from core.sanitize import clean_text
from persona.card import Card, LoreEntry
from persona.library import ID_PATTERN, PersonaError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_CARD_TEXT = 16 * 1024 * 1024  # a card's JSON, unpacked from a PNG chunk
_V2_FIELDS = ["name", "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings", "tags", "creator", "character_version"]


def read_card_file(path: Path) -> dict[str, Any]:
    """The card JSON from a .json or .png file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PersonaError(f"{path}: {exc.strerror}") from None
    return read_card_bytes(raw, str(path))


def read_card_bytes(raw: bytes, where: str) -> dict[str, Any]:
    """The card JSON from the bytes of a .json or .png card (`where` names them in errors)."""
    if raw.startswith(PNG_MAGIC):
        chunks = png_text_chunks(raw, where)
        payload = chunks.get("ccv3") or chunks.get("chara")
        if payload is None:
            raise PersonaError(f"{where}: PNG has no 'chara' or 'ccv3' text chunk")
        try:
            raw = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise PersonaError(f"{where}: card chunk is not base64") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PersonaError(f"{where}: not a card (invalid JSON: {exc})") from None
    if not isinstance(data, dict):
        raise PersonaError(f"{where}: not a card (JSON is not an object)")
    return data


def png_text_chunks(raw: bytes, where: Path | str) -> dict[str, str]:
    """tEXt / iTXt / zTXt chunks of a PNG, keyword -> text; a broken chunk is a PersonaError that says so."""
    out: dict[str, str] = {}
    pos = len(PNG_MAGIC)
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise PersonaError(f"{where}: truncated PNG")
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            try:
                key, text = _text_chunk(kind, body)
            except (zlib.error, UnicodeDecodeError, IndexError) as exc:
                raise PersonaError(f"{where}: a broken {kind.decode()} chunk in the PNG ({type(exc).__name__})") from None
            except ValueError as exc:
                raise PersonaError(f"{where}: {exc}") from None
            out[key] = text
    return out


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str]:
    """One text chunk's keyword and text."""
    key, _, rest = body.partition(b"\0")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return key.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
    compressed, rest = rest[0], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _tkey, _, text = rest.partition(b"\0")
    return key.decode("latin-1"), (_inflate(text) if compressed else text).decode()


def _inflate(data: bytes) -> bytes:
    """Decompressed chunk text, at most MAX_CARD_TEXT bytes (a small chunk cannot unpack into gigabytes)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_CARD_TEXT)
    if inflater.unconsumed_tail:
        raise ValueError(f"the card text in the PNG unpacks to more than {MAX_CARD_TEXT // (1024 * 1024)} MB")
    return out


def card_from_json(data: dict[str, Any], path: Path) -> Card:
    """Map a V2/V3 card (or a V1 flat card) onto our Card."""
    spec = data.get("spec", "")
    body = data.get("data") if spec in ("chara_card_v2", "chara_card_v3") else data
    if not isinstance(body, dict):
        raise PersonaError(f"{path}: 'data' is not an object")
    # a card comes from anyone: its text is cleaned like a message (controls, template tokens)
    fields = {k: _clean(body[k]) for k in _V2_FIELDS if body.get(k) is not None}
    nick = _clean(body.get("nickname"))
    if isinstance(nick, str) and nick.strip():
        fields["nickname"] = [nick.strip()]
    talk = _talkativeness(body.get("extensions"))
    if talk is not None:
        fields["talkativeness"] = talk
    book = body.get("character_book") or {}
    entries = book.get("entries", []) if isinstance(book, dict) else []
    lore = []
    for i, entry in enumerate(e for e in entries if isinstance(e, dict)):
        try:
            lore.append(_lore(entry))
        except (ValueError, TypeError) as exc:
            raise PersonaError(f"{path}: character_book.entries[{i}]: {exc}") from None
    try:
        fields["lorebook"] = lore
        return Card.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(card)"
        raise PersonaError(f"{path}: {key}: {err['msg']}") from None


def _talkativeness(extensions: Any) -> float | None:
    """SillyTavern's `extensions.talkativeness` (written as a number or as text, 0 to 1); None when absent or unusable."""
    if not isinstance(extensions, dict):
        return None
    try:
        value = float(extensions.get("talkativeness"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return min(1.0, max(0.0, value)) if value == value else None


def _clean(value: Any) -> Any:
    """A card value with its text cleaned: a string, or each string of a list; anything else as it is."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_text(v) if isinstance(v, str) else v for v in value]
    return value


def _words(entry: dict[str, Any], name: str) -> list[str]:
    value = entry.get(name) or []
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of strings")
    return [clean_text(str(k)) for k in value]


def _int(entry: dict[str, Any], name: str, default: int) -> int:
    value = entry.get(name)
    return default if value is None else int(value)


def _chapter(entry: dict[str, Any], ext: dict[str, Any]) -> int | None:
    """The source chapter an entry belongs to: `chapter` on the entry or in its extensions."""
    value = entry.get("chapter", ext.get("chapter"))
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not re.fullmatch(r"[0-9]{1,9}", str(value).strip()):
        raise ValueError(f"chapter must be a whole number of 1 or more, not {str(value)[:20]!r}")
    chapter = int(str(value).strip())
    if chapter < 1:
        raise ValueError("chapter must be 1 or more (leave it out for lore of the whole work)")
    return chapter


def _lore(entry: dict[str, Any]) -> LoreEntry:
    ext = entry.get("extensions") or {}
    if not isinstance(ext, dict):
        raise ValueError("extensions must be an object")
    logic = {0: "and_any", 1: "not_all", 2: "not_any", 3: "and_all"}.get(ext.get("selectiveLogic", 0))
    return LoreEntry(
        keys=_words(entry, "keys"),
        secondary_keys=_words(entry, "secondary_keys"),
        content=clean_text(str(entry.get("content") or "")),
        enabled=bool(entry.get("enabled", True)),
        insertion_order=_int(entry, "insertion_order", 100),
        case_sensitive=bool(entry.get("case_sensitive") or False),
        selective=bool(entry.get("selective") or False),
        selective_logic=logic or "and_any",  # type: ignore[arg-type]
        constant=bool(entry.get("constant") or False),
        position="before_char" if entry.get("position") == "before_char" else "after_char",
        priority=_int(entry, "priority", 10),
        comment=clean_text(str(entry.get("comment") or entry.get("name") or "")),
        chapter=_chapter(entry, ext),
    )


def slug_for(name: str) -> str:
    """A persona id from a card name (ASCII words, else a short hash)."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    slug = "-".join(words)[:40].strip("-")
    return slug if slug and ID_PATTERN.match(slug) else "card-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def import_card(path: Path, dest_root: Path, pid: str | None = None, force: bool = False) -> Path:
    """Convert a card file into `dest_root/<id>/card.toml`; nothing is written on error."""
    card = card_from_json(read_card_file(path), path)
    pid = pid or slug_for(card.name)
    if not ID_PATTERN.match(pid):
        raise PersonaError(f"invalid persona id '{pid}' (use a-z, 0-9, '-' and '_')")
    target = dest_root / pid / "card.toml"
    if target.exists() and not force:
        raise PersonaError(f"{target} exists (use --force to replace it, or --id for another id)")
    return save_card(card, dest_root, pid)


def import_card_bytes(raw: bytes, where: str, dest_root: Path, taken: Iterable[str] = ()) -> Path:
    """A card from its bytes into `dest_root/<id>/card.toml`; the id comes from the card's name,
    numbered on where it is taken (a card in `taken` or a folder already there), so nothing is replaced."""
    card = card_from_json(read_card_bytes(raw, where), Path(where))
    base, used = slug_for(card.name)[:60], set(taken)
    pid = base
    for n in range(2, 10_000):
        if pid not in used and not (dest_root / pid).exists():
            break
        pid = f"{base}-{n}"
    return save_card(card, dest_root, pid)


def save_card(card: Card, dest_root: Path, pid: str) -> Path:
    """Write `card` as `dest_root/<pid>/card.toml` (private, replaced at once); its path."""
    if not ID_PATTERN.match(pid):
        raise PersonaError(f"invalid persona id '{pid}' (use a-z, 0-9, '-' and '_')")
    target = dest_root / pid / "card.toml"
    text = tomli_w.dumps(card.model_dump(by_alias=True, mode="json", exclude_none=True), multiline_strings=True)
    write_private(target, text.encode("utf-8"))
    return target
