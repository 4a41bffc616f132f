"""Keep solver libraries from writing to the terminal when the user did not ask for output.

Every backend passes its library's own "quiet" setting (``verbose=False``, the default of
`make_solver`). Two libraries still write to the process's file descriptors directly, below
any setting:

* HiGHS 1.12 (the one bundled with ortools 9.15 and pinned for highspy) prints
  ``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();`` to stdout
  with a bare ``printf`` during some MIP solves (HiGHS issue #2783), and its QP solver
  prints ``degeneracy? not possible to find non-active constraint to leave basis. ...``
  before it gives up on a degenerate QP;
* OR-Tools 9.15's SCIP wrapper (GSCIP) prints two ``ERROR`` lines to stderr on every solve
  that is given a ``SolveInterrupter`` (which is how Ctrl-C stops it), although the
  interrupter works.

`filter_noise` removes exactly those lines: for the duration of the solver call, the file
descriptor is pointed at a temporary file; afterwards the descriptor is restored and what
was written is copied back to it, minus the known noise. Nothing else is dropped: output of
other threads during the call arrives late, not lost. Windows of several threads overlap
(one redirection, counted), so a thread-parallel batch holds other output until it ends.
A call abandoned at its time limit (`surco.solvers.blocking.deadline_scope`) gives up its
windows at once (`release_thread`: its library's noise may then reach the terminal), and
windows still open when the interpreter exits are closed first, so that no output is lost.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import sys
import tempfile
import threading
from typing import Iterator

from .blocking import on_abandon

#: fd -> substrings of lines that are library noise (see the module docstring)
NOISE: dict[int, tuple[bytes, ...]] = {
    1: (b"HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();",
        b"degeneracy? not possible to find non-active constraint to leave basis."),
    2: (b"SCIPcatchEvent does not support variable or row change events",
        b"[gscip_event_handler.cc:124] ERROR: Error <-9> in function call"),
}

_LOCK = threading.Lock()
_STATE: dict[int, dict] = {}
_LIBC = None


def _after_fork_in_child() -> None:
    # a window open in another thread of the parent never closes in the child: forget it
    global _LOCK
    _LOCK = threading.Lock()
    _STATE.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush() -> None:
    global _LIBC
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None)
    _LIBC.fflush(None)   # C stdio buffers (a printf to a pipe or file sits there)


def _drop_noise(data: bytes, noise: tuple[bytes, ...]) -> bytes:
    """``data`` without its lines that contain one of the ``noise`` texts."""
    return b"".join(line for line in data.splitlines(keepends=True)
                    if not any(p in line for p in noise))


@contextlib.contextmanager
def filter_noise(fd: int) -> Iterator[None]:
    """Drop the known noise lines (`NOISE`) written to ``fd`` (1 or 2) inside the block."""
    token = object()
    with _LOCK:
        st = _STATE.get(fd)
        if st is None:
            _flush()
            tmp = tempfile.TemporaryFile()
            saved = os.dup(fd)
            os.dup2(tmp.fileno(), fd)
            st = _STATE[fd] = {"open": {}, "saved": saved, "tmp": tmp}
        st["open"][token] = threading.get_ident()
    try:
        yield
    finally:
        with _LOCK:
            if st["open"].pop(token, None) is not None and not st["open"]:
                _close(fd, st)


def _close(fd: int, st: dict) -> None:
    """Restore ``fd`` and copy back what the window caught, minus the noise (under _LOCK)."""
    if _STATE.get(fd) is st:
        del _STATE[fd]
    _flush()
    os.dup2(st["saved"], fd)
    os.close(st["saved"])
    tmp = st["tmp"]
    tmp.seek(0)
    data = _drop_noise(tmp.read(), NOISE[fd])
    tmp.close()
    while data:
        data = data[os.write(fd, data):]


def release_thread(ident: int | None = None) -> None:
    """Close the windows that thread ``ident`` (None: every thread) holds open, as if its
    calls had returned: for a solver call abandoned in that thread, and at exit."""
    with _LOCK:
        for fd, st in list(_STATE.items()):
            for token, owner in list(st["open"].items()):
                if ident is None or owner == ident:
                    del st["open"][token]
            if not st["open"]:
                _close(fd, st)


atexit.register(release_thread)
on_abandon(release_thread)
