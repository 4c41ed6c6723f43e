"""`persona list|show|import`: the character cards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.boot import settings_from
from persona.importer import import_card
from persona.library import PersonaLibrary


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the persona commands."""
    p = sub.add_parser("persona", help="list, show or import character cards", parents=[common])
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    psub.add_parser("list", help="id and name of every persona", parents=[common]).set_defaults(func=list_cmd)
    show = psub.add_parser("show", help="print a card", parents=[common])
    show.add_argument("id")
    show.set_defaults(func=show_cmd)
    imp = psub.add_parser("import", help="import a Character Card V2/V3 (.json or .png)", parents=[common])
    imp.add_argument("file", type=Path)
    imp.add_argument("--id", dest="pid", help="persona id (default: from the card's name)")
    imp.add_argument("--force", action="store_true", help="replace an existing persona with that id")
    imp.set_defaults(func=import_cmd)


def _library(args: argparse.Namespace) -> PersonaLibrary:
    s = settings_from(args)
    return PersonaLibrary.configured(s.personas)


def list_cmd(args: argparse.Namespace) -> int:
    """Print `id<TAB>name` per persona."""
    lib = _library(args)
    for pid in lib.ids():
        print(f"{pid}\t{lib.get(pid).name}")
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    """Print one card as stored."""
    persona = _library(args).get(args.id)
    sys.stdout.write((persona.folder / "card.toml").read_text(encoding="utf-8"))
    return 0


def import_cmd(args: argparse.Namespace) -> int:
    """Import a card file into the import folder."""
    s = settings_from(args)
    target = import_card(args.file, s.personas.import_dir, args.pid, args.force)
    lib = PersonaLibrary.configured(s.personas)
    persona = lib.get(target.parent.name)
    print(f"imported {persona.id}\t{persona.name} ({len(persona.card.lorebook)} lore entries) -> {target}")
    return 0
