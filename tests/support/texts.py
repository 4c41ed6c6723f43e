"""Long model replies that are not broken: no span repeats, one mark at a time, Chinese throughout."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[2]


def varied_chinese(chars: int, seed: int = 0, prefix: str = "") -> str:
    """`chars` characters of made-up Chinese sentences (each starting with `prefix`) that never loop."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = prefix + "".join(chr(0x4E00 + rng.randrange(6000)) for _ in range(rng.randrange(8, 20))) + "。"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def talkative_persona(folder: Path, persona: str = "horo", most: int = 20_000) -> Path:
    """A personas folder holding a copy of `persona` whose card allows replies up to `most` characters."""
    card = tomllib.loads((ROOT / "persona" / persona / "card.toml").read_text(encoding="utf-8"))
    size = {"typical": 80, "max": most}
    card["reply_size"] = {"private": size, "group": size}
    (folder / persona).mkdir(parents=True, exist_ok=True)
    (folder / persona / "card.toml").write_text(tomli_w.dumps(card), encoding="utf-8")
    return folder


def unbroken_chinese(chars: int, seed: int = 0) -> str:
    """`chars` Chinese characters with no punctuation at all (one long clause) that never loop."""
    rng = random.Random(seed)
    return "".join(chr(0x4E00 + rng.randrange(6000)) for _ in range(chars))
