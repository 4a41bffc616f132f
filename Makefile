# The two commands. Each is self-contained on a fresh machine with Python 3.11 and make:
# it creates .venv if missing, installs the package with its test extras, then runs.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?= -m "not slow and not ray and not torchrec"

.PHONY: demo test test-all install clean

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
	$(BIN)/python -m pytest -m ""

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
