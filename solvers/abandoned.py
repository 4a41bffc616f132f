"""Solver calls left running in the background, and the interpreter's exit.

A `surco.solvers.blocking.blocking_call` that does not return within its grace period after
Ctrl-C or its deadline is *abandoned*: the caller goes on and the call finishes in its helper
thread, holding its owner's lock. This module keeps the list of such calls, runs the hooks
registered with `on_abandon`, and at exit waits for them, stopping them again: a helper
thread whose solver call returns during interpreter finalisation is ended by CPython 3.11
with ``pthread_exit``, which aborts the process inside C++ (pybind11) frames.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any, Callable

__all__ = ["abandon", "abandoned_running", "on_abandon"]

_LOCK = threading.Lock()
#: calls left running, each as (its job, its stop()); a job has ``done`` (an Event) and
#: ``thread`` (the ident of the helper thread running it, or None)
_ABANDONED: list[tuple[Any, Callable[[], None]]] = []
_ON_ABANDON: list[Callable[[int], None]] = []
_RESTOP_EVERY = 0.1   # seconds between stop() calls while waiting at exit


def _after_fork_in_child() -> None:
    """A forked child runs none of the parent's calls (and a lock held at the fork stays
    held): start from scratch."""
    global _LOCK
    _LOCK = threading.Lock()
    _ABANDONED.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def on_abandon(hook: Callable[[int], None]) -> None:
    """Call ``hook(thread_ident)`` whenever a call running in that helper thread is
    abandoned (`surco.solvers.output` closes the thread's output windows)."""
    _ON_ABANDON.append(hook)


def abandon(job: Any, stop: Callable[[], None]) -> None:
    """``job`` is left running in the background: remember it for the exit, and run the
    `on_abandon` hooks for its thread (a hook that raises is ignored)."""
    with _LOCK:
        _ABANDONED[:] = [(j, s) for j, s in _ABANDONED if not j.done.is_set()]
        _ABANDONED.append((job, stop))
    if job.thread is not None:
        for hook in list(_ON_ABANDON):
            try:
                hook(job.thread)
            except Exception:   # a hook must not turn a time limit into a crash
                pass


def abandoned_running() -> bool:
    """Whether an abandoned call is still running (only such a call can hold an owner's
    lock between calls)."""
    return not all(j.done.is_set() for j, _ in _ABANDONED)


def _at_exit() -> None:
    """Wait for abandoned calls, stopping them again, before the interpreter finalises
    (saying so on stderr after a second)."""
    running = [(j, s) for j, s in _ABANDONED if not j.done.is_set()]
    if not running:
        return
    told = False
    start = time.monotonic()
    for job, stop in running:
        while not job.done.is_set():
            if not told and time.monotonic() - start > 1.0:
                told = True
                print(f"surco: waiting for {len(running)} solver call(s) stopped at a time "
                      "limit or by Ctrl-C to return", file=sys.stderr, flush=True)
            try:
                stop()
            except Exception:
                pass
            job.done.wait(_RESTOP_EVERY)


atexit.register(_at_exit)
