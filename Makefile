# Two commands do everything: `make run` (the bot) and `make test` (the test suite).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench doctor

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	{ $(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt 2>&1; } | { grep -v "is ignored" || true; }
	$(BIN)/pip check
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot run

test: $(STAMP)
	bash .ci/llm.sh
	BOT_TEST_LLM_PYTHON=.venv-llm/bin/python bash .ci/redis.sh $(BIN)/python -m pytest -q
	$(BIN)/ruff check .
	$(BIN)/mypy
	bash .ci/embed.sh
	bash .ci/train.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

doctor: $(STAMP)
	$(BIN)/python -m bot doctor

bench: $(STAMP)
	bash .ci/redis.sh $(BIN)/python -m bench core
	$(BIN)/python -m bench knowledge
	$(BIN)/python -m bench voice
	bash .ci/redis.sh $(BIN)/python -m bench pipeline --channels 100 --messages 1000 --llm-latency-ms 300
	bash .ci/redis.sh $(BIN)/python -m bench qq --groups 50 --messages 1000 --rate 100 --llm-latency-ms 300
	bash .ci/redis.sh $(BIN)/python -m bench qq --groups 400 --messages 400 --rate 0 --llm-latency-ms 300
