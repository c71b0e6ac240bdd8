# The few commands people run. `make demo` sets everything up from scratch and
# runs the knowledge hub on the bundled corpus; `make test` runs every test.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so nothing pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/kb ingest corpus/
	$(BIN)/kb search "ลูกค้ารอสายนานเกินไป ควรแก้ไขอย่างไร" -k 5

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check kb indexer webapp tests bench

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval.py

clean:
	rm -rf $(VENV) data
