"""A character card as an HTML form, and the form's fields back into a card's table (checked by persona's validator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bot.web.pages import esc

Kind = Literal["line", "text", "words", "blocks", "number"]
BLOCK_CUT = "---"  # a line of its own between two alternate greetings


@dataclass(frozen=True, slots=True)
class Field:
    """One editable key of the card (dotted for a nested one) and how the form shows it."""

    key: str
    label: str
    kind: Kind = "line"
    hint: str = ""


FIELDS = (
    Field("name", "Name"),
    Field("nickname", "Nicknames", "words", "comma-separated; they summon the character in groups"),
    Field("aliases", "Aliases", "words", "comma-separated; how the source work names the character"),
    Field("language", "Language", hint="zh, en, ja …"),
    Field("user_alias", "What the character calls the user"),
    Field("tags", "Tags", "words", "comma-separated"),
    Field("system_prompt", "System prompt", "text", "{{char}} and {{user}} are filled in"),
    Field("description", "Description", "text"),
    Field("personality", "Personality", "text"),
    Field("scenario", "Scenario", "text"),
    Field("post_history_instructions", "Reminder after the conversation", "text"),
    Field("first_mes", "Greeting", "text"),
    Field("alternate_greetings", "Other greetings", "blocks", f"a line with {BLOCK_CUT} between two"),
    Field("mes_example", "Example dialogue", "text", "<START> before each; {{user}}: … and {{char}}: … lines"),
    Field("creator_notes", "Notes", "text"),
    Field("reply_size.private.typical", "Reply length in private chats (typical)", "number", "characters"),
    Field("reply_size.private.max", "Reply length in private chats (most)", "number", "characters"),
    Field("reply_size.group.typical", "Reply length in groups (typical)", "number", "characters"),
    Field("reply_size.group.max", "Reply length in groups (most)", "number", "characters"),
)


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return data


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *path, last = key.split(".")
    for part in path:
        inner = data.get(part)
        data = data.setdefault(part, {}) if isinstance(inner, dict) or inner is None else {}
    data[last] = value


def shown(table: dict[str, Any]) -> dict[str, str]:
    """Each field's text in the form, from a card's table (`Card.model_dump(by_alias=True)`)."""
    out: dict[str, str] = {}
    for f in FIELDS:
        value = _get(table, f.key)
        if f.kind == "words":
            out[f.key] = ", ".join(str(v) for v in value or [])
        elif f.kind == "blocks":
            out[f.key] = f"\n{BLOCK_CUT}\n".join(str(v) for v in value or [])
        else:
            out[f.key] = "" if value == {} else str(value)
    return out


def merged(table: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The card's table with the form's fields put in (a field the form left out stays as it was)."""
    for f in FIELDS:
        if f.key not in form:
            continue
        raw = form[f.key].replace("\r\n", "\n")
        value: Any = raw
        if f.kind == "words":
            value = [w.strip() for w in raw.replace("，", ",").split(",") if w.strip()]
        elif f.kind == "blocks":
            blocks = "\n".join(raw.splitlines()).split(f"\n{BLOCK_CUT}\n")
            value = [b.strip() for b in blocks if b.strip() and b.strip() != BLOCK_CUT]
        elif f.kind in ("line", "number"):
            value = raw.strip()
        _set(table, f.key, value)
    return table


def problems_by_field(problems: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The validator's (key, message) pairs under the field they concern; the rest apart."""
    keys = sorted((f.key for f in FIELDS), key=len, reverse=True)
    mine: dict[str, str] = {}
    rest: list[str] = []
    for loc, what in problems:
        key = next((k for k in keys if loc == k or loc.startswith(k + ".")), None)
        if key is None:
            rest.append(f"{loc}: {what}")
        else:
            mine.setdefault(key, what)
    return mine, rest


def form(pid: str, values: dict[str, str], problems: dict[str, str]) -> str:
    """The edit form of card `pid` with `values`, each problem under its field."""
    rows = []
    for f in FIELDS:
        ident = "f-" + f.key.replace(".", "-")
        value = values.get(f.key, "")
        if f.kind in ("text", "blocks"):
            box = f'<textarea id="{esc(ident)}" name="{esc(f.key)}" rows="{6 if f.kind == "text" else 4}">{esc(value)}</textarea>'
        else:
            mode = ' inputmode="numeric"' if f.kind == "number" else ""
            box = f'<input id="{esc(ident)}" name="{esc(f.key)}" value="{esc(value)}"{mode}>'
        hint = f'<small class="hint">{esc(f.hint)}</small>' if f.hint else ""
        wrong = problems.get(f.key)
        error = f'<p class="error" id="{esc(ident)}-error">{esc(wrong)}</p>' if wrong else ""
        rows.append(f'<div class="field{" bad" if wrong else ""}"><label for="{esc(ident)}">{esc(f.label)}</label>'
                    f"{hint}{box}{error}</div>")
    return (f'<form method="post" action="/character/save" class="card-form">'
            f'<input type="hidden" name="id" value="{esc(pid)}">{"".join(rows)}'
            '<button type="submit">Save</button></form>')
