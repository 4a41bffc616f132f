# The two commands. Each is self-contained on a fresh machine with Python 3.11 and make:
# it creates .venv if missing, installs the package with its test extras, then runs.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# two workers (pytest-xdist): the suite is CPU-bound and the target machine has 2 cores;
# worksteal: a worker that runs out of tests takes queued ones from the other, so the
# long tests (notebooks, conformance) do not leave one worker idle at the end
PYTEST_ARGS ?= -n 2 --dist worksteal -m "not slow and not ray and not torchrec and not docs"

.PHONY: demo test test-all install clean docs notebooks

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,notebooks,photonics]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m surco.problems.sharding.demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,notebooks,photonics,ray,torchrec]"
	$(BIN)/python -m pip install -q --no-deps torchrec==1.8.0
	$(BIN)/python -m pytest -m "not docs"   # the docs check runs on a built site: make docs

# The documentation site (mkdocs.yml): the docs extra into .venv, the site built offline
# into site/, then two of its pages checked in headless Chromium (Debian's `chromium`).
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,notebooks,photonics,docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build
	$(BIN)/python -m pytest -m docs tests/test_docs.py

# Re-execute every notebook in place, saving outputs and the commit they ran at
# (notebooks/execute.py); commit code first, since tests/test_notebooks.py checks that no
# module a notebook loads changed after that commit. NOTEBOOKS_ARGS=--small: small size.
NOTEBOOKS_ARGS ?=
notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py $(NOTEBOOKS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
