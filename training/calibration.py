"""A local calibration set for `lmdeploy lite auto_awq`, so that AWQ needs no dataset from the hub.

lmdeploy (0.18) takes only named hub datasets (`--calib-dataset pileval` loads
`mit-han-lab/pile-val-backup`, split `validation`, field `text`, lines of at most 512 tokens). The
`datasets` library looks for a hub id as a local folder first, so the toolkit writes the texts as
`ROOT/mit-han-lab/pile-val-backup/validation.jsonl` and runs lmdeploy in ROOT, offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.errors import TrainingError
from training.records import turns_of
from training.text import read_text

HUB_ID = "mit-han-lab/pile-val-backup"
PIECE_CHARS = 300  # Chinese runs 1-2 tokens a character: under lmdeploy's 512-token cut-off


def calibration_texts(source: Path, piece_chars: int = PIECE_CHARS) -> list[str]:
    """Texts from a novel / plain text (paragraphs packed to `piece_chars`) or from conversation JSONL
    (each record's turns laid end to end, cut to `piece_chars`)."""
    if not source.is_file():
        raise TrainingError(f"calibration file not found: {source}")
    raw = read_text(source.read_bytes())
    if source.suffix.lower() in (".jsonl", ".json"):
        texts = []
        for line in raw.splitlines():
            if line.strip():
                try:
                    turns = turns_of(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise TrainingError(f"{source}: not conversation JSONL (or give plain text)") from None
                text = "\n".join(t.get("input", "") + "\n" + t.get("output", "") for t in turns).strip()
                texts += [text[i : i + piece_chars] for i in range(0, len(text), piece_chars)]
        return [t for t in texts if t.strip()]
    out: list[str] = []
    current = ""
    for para in (p.strip() for p in raw.splitlines()):
        if not para:
            continue
        while len(para) > piece_chars:
            out.append(para[:piece_chars])
            para = para[piece_chars:]
        if current and len(current) + 1 + len(para) > piece_chars:
            out.append(current)
            current = para
        else:
            current = f"{current}\n{para}" if current else para
    if current:
        out.append(current)
    return out


def write_calibration(source: Path, root: Path, limit: int = 30000) -> Path:
    """Write the local pileval set under `root` from `source`; returns the JSONL written."""
    texts = calibration_texts(source)[:limit]
    if not texts:
        raise TrainingError(f"{source}: no text to calibrate on")
    dest = root / HUB_ID / "validation.jsonl"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return dest
