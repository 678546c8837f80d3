# Set-up entry points (README): `make lab` and `make test`; `make check` is the quick tier while editing.
VENV   := .venv
PYTHON := $(VENV)/bin/python

.PHONY: lab notebooks test check

# torch==2.13.0 first: it is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.base:
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(PYTHON) -m pip install -q torch==2.13.0
	touch $@

# Installing the package builds the native step (setup.py, about a minute) against the torch installed above, so no
# run waits for a compiler; --no-build-isolation: an isolated build would pull a CUDA torch of its own. A change to the
# C++ source installs (and builds) again.
INSTALL := $(PYTHON) -m pip install -q --no-build-isolation -e
NATIVE  := setup.py rtu_core/engines/native/rtu_rtrl.cpp

# What the lab needs, and no more.
$(VENV)/.lab: $(VENV)/.base pyproject.toml $(NATIVE)
	$(INSTALL) ".[lab]"
	touch $@

# The lab's packages and JupyterLab (with ipywidgets) for the notebooks.
$(VENV)/.notebooks: $(VENV)/.base pyproject.toml $(NATIVE)
	$(INSTALL) ".[lab,notebooks]"
	touch $@

# Everything the test suite (JupyterLab included: a browser test opens it), the benchmarks and Ray need.
$(VENV)/.test: $(VENV)/.base pyproject.toml $(NATIVE)
	$(INSTALL) ".[lab,notebooks,test,bench,ray]"
	touch $@

# The Panel lab at http://localhost:5006/app (PORT=... to change it).
PORT ?= 5006
lab: $(VENV)/.lab
	$(VENV)/bin/python -m panel serve app.py --warm --port $(PORT)

# JupyterLab on notebooks/ (NOTEBOOK_PORT=... to change the port). PANEL_INLINE=1: Bokeh and Panel's JavaScript
# comes with the outputs, not from a CDN, so the interactive cells work offline.
NOTEBOOK_PORT ?= 8888
notebooks: $(VENV)/.notebooks
	PANEL_INLINE=1 $(VENV)/bin/jupyter lab --notebook-dir=notebooks --port $(NOTEBOOK_PORT) \
		$(if $(filter 0,$(shell id -u)),--allow-root,)

# Lint and format first (ruff, settings in pyproject.toml): a lint error fails the suite as a failing test does.
test: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) -m pytest -q --durations=15

# Exactness and unit tests only (under a minute once the native step is built).
check: $(VENV)/.test
	$(PYTHON) -m pytest -q -m "not slow" tests
