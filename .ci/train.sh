#!/usr/bin/env bash
# The training toolkit's integration test in its own environment.
# Builds .venv-train from requirements-train.txt on first use (a stamp file holding the requirements'
# hash keeps it until they change), then runs tests/training_xtuner with it: xtuner's own code loads
# the rendered config and tokenizes the produced JSONL. Works on a clean clone; no GPU, no network
# beyond the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
VENV=.venv-train
REQ=requirements-train.txt
STAMP=$VENV/.installed
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "train.sh: $VENV is up to date with $REQ"
else
  echo "train.sh: building $VENV from $REQ (first time: about 5 minutes, ~6.6 GB on disk)"
  start=$(date +%s)
  test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
  { "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" 2>&1; } | { grep -v "is ignored" || true; }
  "$VENV/bin/pip" check
  echo "$want" > "$STAMP"
  echo "train.sh: $VENV built in $(( $(date +%s) - start )) s"
fi
echo "train.sh: running the xtuner integration test (tests/training_xtuner) with $VENV"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -c tests/training_xtuner/xtuner.ini \
  --rootdir=. --confcutdir=tests/training_xtuner tests/training_xtuner/xtuner_check.py
echo "train.sh: integration test took $(( $(date +%s) - start )) s"
