"""Find and load persona cards from the configured folders."""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from core.config import PersonasConfig
from persona.card import Card, Persona

log = logging.getLogger(__name__)
PACKAGED = Path(__file__).resolve().parent  # horo, yexiu and wukong ship inside the package
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def name_position(text: str, name: str) -> int:
    """Where a name occurs in text (-1 if not): as a whole word for Latin names, anywhere for CJK ones."""
    low, word = text.lower(), name.lower()
    if not word.isascii():
        return low.find(word)
    found = re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", low)
    return found.start() if found else -1


class PersonaError(Exception):
    """A card that cannot be loaded or imported; the message names the file and key."""


class CardInvalid(PersonaError):
    """A card whose values break the card format; `problems` holds (key, what is wrong) for each."""

    def __init__(self, where: str, problems: list[tuple[str, str]]):
        key, what = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{where}: {key}: {what}{more}")
        self.problems = problems


def check_card(data: object, where: str) -> Card:
    """The card in `data` (a card.toml's table), or CardInvalid naming every key that is wrong."""
    try:
        return Card.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in err["loc"]) or "(card)",
                     "unknown key" if err["type"] == "extra_forbidden" else err["msg"]) for err in exc.errors()]
        raise CardInvalid(where, problems) from None


def load_card(path: Path) -> Card:
    """Parse one card.toml, raising PersonaError that names the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PersonaError(f"{path}: {exc}") from None
    return check_card(data, str(path))


class PersonaLibrary:
    """Every persona found in the folders; later folders override earlier ones by id."""

    def __init__(self, dirs: Iterable[Path]):
        self.dirs = [Path(d) for d in dirs]
        self._personas: dict[str, Persona] = {}
        self.reload()

    @classmethod
    def configured(cls, cfg: PersonasConfig) -> PersonaLibrary:
        """The folders of [personas], then the imported cards.

        The default, one folder named "persona", falls back to the cards shipped with the package where
        no such folder exists (an installed bot run from another folder); any other folder named on
        purpose is never replaced.
        """
        dirs = list(cfg.dirs)
        if len(dirs) == 1 and Path(dirs[0]).name == "persona" and not Path(dirs[0]).is_dir():
            log.info("no %s folder: using the characters shipped with the package", dirs[0])
            dirs = [PACKAGED]
        return cls([*dirs, cfg.import_dir])

    def reload(self) -> None:
        """Read the folders again."""
        found: dict[str, Persona] = {}
        for root in self.dirs:
            if not root.is_dir():
                continue
            for card_path in sorted(root.glob("*/card.toml")):
                pid = card_path.parent.name
                if ID_PATTERN.match(pid):
                    found[pid] = Persona(pid, load_card(card_path), card_path.parent)
        self._personas = found

    def ids(self) -> list[str]:
        """Persona ids, sorted."""
        return sorted(self._personas)

    def __contains__(self, pid: object) -> bool:
        return pid in self._personas

    def get(self, pid: str) -> Persona:
        """The persona with this id, or PersonaError listing the known ones."""
        try:
            return self._personas[pid]
        except KeyError:
            known = ", ".join(self.ids()) or "none"
            raise PersonaError(f"no persona '{pid}' (known: {known})") from None

    def find_by_name(self, text: str) -> Persona | None:
        """The persona whose name or nickname appears first in the text (Latin names as whole words)."""
        best: tuple[int, Persona] | None = None
        for p in self._personas.values():
            for word in p.triggers():
                at = name_position(text, word)
                if at >= 0 and (best is None or at < best[0]):
                    best = (at, p)
        return best[1] if best else None
