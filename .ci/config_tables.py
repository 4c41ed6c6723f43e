"""Print README's configuration tables from config.toml (keys, defaults and their comments).

Usage: python .ci/config_tables.py [--write README.md]  (replaces the block between the markers)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- config tables: begin -->", "<!-- config tables: end -->"
_KEY = re.compile(r"^(\w+)\s*=\s*(.*?)\s*(?:#\s*(.*))?$")
_SECRET = re.compile(r"^#\s*(\w+):\s*(.*)$")


def tables(text: str) -> str:
    """Markdown: one table per [section]."""
    out: list[str] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out += ["", f"**[{section}]**", "", "| key | default | meaning |", "|---|---|---|"]
            continue
        if not section:
            continue
        env = f"BOT_{section.upper()}__"
        if m := _KEY.match(line):
            key, value, note = m.group(1), m.group(2).strip(), (m.group(3) or "").strip().replace("|", "\\|")
            out.append(f"| `{key}` (`{env}{key.upper()}`) | `{value}` | {note} |")
        elif (m := _SECRET.match(line)) and section and "BOT_" in m.group(2):
            out.append(f"| `{m.group(1)}` (`{env}{m.group(1).upper()}`) | secret | {m.group(2)} |")
    return "\n".join(out).strip()


def main() -> int:
    """Print the tables, or write them into README.md between the markers."""
    block = f"{BEGIN}\n{tables((ROOT / 'config.toml').read_text(encoding='utf-8'))}\n{END}"
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        text = path.read_text(encoding="utf-8")
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        else:
            text = text.replace("CONFIG_TABLES", block)
        path.write_text(text, encoding="utf-8")
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
