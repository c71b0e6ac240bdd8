# The few commands people run. `make demo` sets everything up from scratch,
# ingests the bundled corpus and serves the portal; `make test` runs every test.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve test lint bench i18n constraints clean
PORT ?= 5000

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	# The CPU build of torch first, so nothing pulls a CUDA build; then everything at the pinned versions.
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/kb ingest corpus/
	$(BIN)/kb prepare-answers
	@echo "demo accounts (one per role):"
	$(BIN)/kb user demo
	@echo "portal: http://127.0.0.1:$(PORT)/  (Ctrl-C stops it)"
	KB_COOKIE_SECURE=0 $(BIN)/kb serve --port $(PORT)

serve: setup
	$(BIN)/kb serve --port $(PORT)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check cli kb indexer webapp tests bench
	$(BIN)/lint-imports

# After changing dependencies in pyproject.toml: install them, then pin the whole tree again.
constraints: setup
	$(BIN)/pip install -q -e '.[test]'
	( sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^-e' \
	  | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' ) > constraints.tmp && mv constraints.tmp constraints.txt

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/answers.py
	$(BIN)/python bench/workflows.py

# After changing the interface's messages: extract them and merge them into each catalog.
i18n: setup
	$(BIN)/pybabel extract -F webapp/babel.cfg -o webapp/translations/messages.pot .
	$(BIN)/pybabel update -i webapp/translations/messages.pot -d webapp/translations --no-fuzzy-matching

clean:
	rm -rf $(VENV) data
