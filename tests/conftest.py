"""Shared test set-up.

* The shared helper modules of the test folders (``tests/solvers/solvers_fixtures.py``: the
  small LP/MIP fixtures with their known optima; ``tests/estimators/_est_helpers.py``:
  counting solvers and assignment instances) are importable by name from any test, whatever
  pytest's import mode, because their folders are put on ``sys.path`` here.
* JAX runs on the CPU in tests unless a caller chose otherwise (``JAX_PLATFORMS``), and
  64-bit mode stays off, as for users.
* Fixtures used across folders: ``rng`` (a seeded NumPy generator).
* One JAX compilation cache per test session, in a fresh temporary folder removed at its
  end, shared by the xdist workers and the notebook kernels they start (they inherit the
  environment): a program one of them compiled is loaded, not compiled again, by the
  others. Nothing carries over from an earlier run. A caller's ``JAX_COMPILATION_CACHE_DIR``
  is left as it is.
* Ctrl-C is tested by sending SIGINT to the test process. A shell that starts ``make test``
  in the background (``make test &``, ``nohup``, a CI step without job control) starts it
  with SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler, so those
  tests would see no Ctrl-C at all. The handler is installed here, as in a foreground run.
"""
import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

if "JAX_COMPILATION_CACHE_DIR" not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ:
    _JAX_CACHE = tempfile.mkdtemp(prefix="surco-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _JAX_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    atexit.register(shutil.rmtree, _JAX_CACHE, True)

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
