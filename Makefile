# Set-up entry points (README): `make lab` and `make test`; `make check` is the quick tier while editing.
VENV   := .venv
PYTHON := $(VENV)/bin/python

.PHONY: lab test check

# torch==2.13.0 first: it is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.base:
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q torch==2.13.0
	touch $@

# What the lab needs, and no more.
$(VENV)/.lab: $(VENV)/.base pyproject.toml
	$(PYTHON) -m pip install -q -e ".[lab]"
	touch $@

# Everything the test suite, the benchmarks and the Ray backend need.
$(VENV)/.test: $(VENV)/.base pyproject.toml
	$(PYTHON) -m pip install -q -e ".[lab,test,bench,ray]"
	touch $@

# The Panel lab at http://localhost:5006/app (PORT=... to change it).
PORT ?= 5006
lab: $(VENV)/.lab
	$(VENV)/bin/python -m panel serve app.py --port $(PORT)

# Lint and format first (ruff, settings in pyproject.toml): a lint error fails the suite as a failing test does.
test: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) -m pytest -q

# Exactness and unit tests only (under a minute once the native step is built).
check: $(VENV)/.test
	$(PYTHON) -m pytest -q -m "not slow" tests
