#!/usr/bin/env bash
# The training toolkit's integration tests in their own environment.
# Builds .venv-train from requirements-train.txt on first use (a stamp file holding the requirements'
# hash keeps it until they change; then it is built afresh), puts llama.cpp's HF-to-GGUF converter
# beside it (from the llama-cpp-python source package that requirements-llm.txt pins, so the GGUF it
# writes is the one .venv-llm's server reads), then runs tests/training_xtuner with it: xtuner's own
# code loads the rendered config and tokenizes the produced JSONL, and the CPU road trains, merges,
# converts, serves (with .venv-llm's llama.cpp server, built by .ci/llm.sh) and chats with a tiny
# model. Works on a clean clone; no GPU, no network beyond the package index.
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
  echo "train.sh: building $VENV from $REQ (first time: about 5 minutes, ~6.3 GB on disk)"
  start=$(date +%s)
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  { "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" 2>&1; } | { grep -v "is ignored" || true; }
  "$VENV/bin/pip" check
  echo "$want" > "$STAMP"
  echo "train.sh: $VENV built in $(( $(date +%s) - start )) s"
fi

# llama.cpp's converter (convert_hf_to_gguf.py, its conversion/ package and gguf-py/), taken from the
# llama-cpp-python source package of the version .venv-llm serves with
CONV=$VENV/llama.cpp
version=$(grep -E '^llama-cpp-python' requirements-llm.txt | sed -E 's/.*==([^ ]+).*/\1/')
if [ "$(cat "$CONV/.version" 2>/dev/null)" != "$version" ]; then
  echo "train.sh: fetching llama.cpp's converter from llama-cpp-python $version (source package)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  { "$VENV/bin/pip" download -q --disable-pip-version-check --no-binary :all: --no-deps \
      "llama-cpp-python==$version" -d "$tmp" 2>&1; } | { grep -v "is ignored" || true; }
  top="llama_cpp_python-$version/vendor/llama.cpp"
  tar -xzf "$tmp"/llama_cpp_python-"$version".tar.gz -C "$tmp" \
    "$top/convert_hf_to_gguf.py" "$top/conversion" "$top/gguf-py" "$top/LICENSE"
  rm -rf "$CONV"
  mv "$tmp/$top" "$CONV"
  echo "$version" > "$CONV/.version"
fi

echo "train.sh: running the xtuner integration tests (tests/training_xtuner) with $VENV"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export BOT_TEST_LLM_PYTHON=${BOT_TEST_LLM_PYTHON:-$PWD/.venv-llm/bin/python}
start=$(date +%s)
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -c tests/training_xtuner/xtuner.ini \
  --rootdir=. --confcutdir=tests/training_xtuner tests/training_xtuner
echo "train.sh: integration tests took $(( $(date +%s) - start )) s"
