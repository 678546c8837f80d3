# Two entry points (README): `make lab` and `make test`. Both create .venv on a fresh clone.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lab test

install: $(STAMP)

# torch==2.13.0 first: it is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[lab,test,bench,ray]"
	touch $(STAMP)

# The Panel lab at http://localhost:5006/app (PORT=... to change it).
PORT ?= 5006
lab: install
	$(VENV)/bin/python -m panel serve app.py --port $(PORT)

test: install
	$(PYTHON) -m pytest -q
