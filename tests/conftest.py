"""Shared test set-up.

* The shared helper modules of the test folders (``tests/solvers/solvers_fixtures.py``: the
  small LP/MIP fixtures with their known optima; ``tests/estimators/_est_helpers.py``:
  counting solvers and assignment instances) are importable by name from any test, whatever
  pytest's import mode, because their folders are put on ``sys.path`` here.
* JAX runs on the CPU in tests unless a caller chose otherwise (``JAX_PLATFORMS``), and
  64-bit mode stays off, as for users.
* JAX's persistent compilation cache is on, in ``.jax-cache/`` at the repository's root
  (git-ignored; a caller's own ``JAX_COMPILATION_CACHE_DIR`` wins), for every compiled
  program however short its compile: the two test workers and the notebook kernels the
  notebook tests start share it, so a program compiled by one test is loaded by the next
  (measured on conformance, compiled-zero and MPAX tests: 9 % less time on a first run with
  an empty cache, 47 % less on a rerun). Programs with host callbacks (the solver calls)
  are never cached by JAX, so every solve still runs.
* Fixtures used across folders: ``rng`` (a seeded NumPy generator).
* Ctrl-C is tested by sending SIGINT to the test process. A shell that starts ``make test``
  in the background (``make test &``, ``nohup``, a CI step without job control) starts it
  with SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler, so those
  tests would see no Ctrl-C at all. The handler is installed here, as in a foreground run.
"""
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_HERE = Path(__file__).resolve().parent
for _sub in ("solvers", "estimators"):
    _p = str(_HERE / _sub)
    if _p not in sys.path:
        sys.path.insert(0, _p)


@pytest.fixture
def rng() -> np.random.Generator:
    """A NumPy generator seeded the same way in every test (seed 0)."""
    return np.random.default_rng(0)
