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
	$(PYTHON) -m pip install -q -e ".[test,bench]"
	touch $(STAMP)

# Until the Panel lab lands: a short live training run on MemoryChain with a progress bar.
lab: install
	$(PYTHON) -m rtu_core train --chain-length 8 --steps 20000 --hidden-size 32 --width 32 \
		--out runs/lab-demo-$$(date +%Y%m%d-%H%M%S)

test: install
	$(PYTHON) -m pytest -q
