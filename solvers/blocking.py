"""Ctrl-C for solver calls that block in C/C++: `blocking_call`, the one way backends run them.

Why this exists: CPython runs a SIGINT handler (raising `KeyboardInterrupt`) only in the
main thread and only between bytecodes. A solver call that sits in C++ for minutes (SCIP,
HiGHS, CP-SAT) therefore delays Ctrl-C until it returns, and several solvers install their
own SIGINT handler that swallows it (SCIP's ``misc/catchctrlc``, on in PySCIPOpt).

The contract every backend here meets, and that a new backend gets by routing its blocking
call through `blocking_call`:

* one SIGINT during ``solve``/``solve_batch`` raises a plain `KeyboardInterrupt` in the
  caller within about a second (`INTERRUPT_GRACE`; typically a few milliseconds), never a
  `SolverError`;
* the interrupted solver call is stopped (not left running), and the solver object stays
  usable for the next ``solve``.

How: called from the main thread, the blocking call runs in a helper thread while the main
thread waits (interruptibly). On `KeyboardInterrupt` (or any exception raised into that
wait) the backend's ``stop`` is called, repeatedly until the call returns or the grace
period ends, and the exception is re-raised. Called from any other thread (a
`solve_batch` worker), the call runs in place and ``stop`` is registered with the batch so
that the caller's interrupt reaches it (`cancel_batch`). Handing a call to the helper thread
costs about 40-50 µs per solve on an idle core (a queue round trip, measured on the 2-core
test machine) and up to ~0.2 ms when the machine is overloaded. Helper threads are daemons,
started on demand and reused; a forked child starts its own.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: seconds the caller waits, after an interrupt, for the stopped call to return before it
#: re-raises anyway (the call then finishes in the background, holding its owner's lock)
INTERRUPT_GRACE = 1.0
_STOP_EVERY = 0.02  # seconds between repeated stop() calls during the grace period

_OWNER_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_POOL_LOCK = threading.Lock()
_POOL = {"threads": 0, "busy": 0}
_JOBS: list["_Job"] = []
_JOBS_READY = threading.Condition(_POOL_LOCK)

_SCOPE = threading.local()          # .batch: id of the solve_batch this worker thread serves
_BATCH_IDS = itertools.count(1)
_ACTIVE_LOCK = threading.Lock()
_ACTIVE: dict[int, set[Callable[[], None]]] = {}   # batch id -> stop() of running calls
_CANCELLED: set[int] = set()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's helper threads, and locks the parent held at
    the fork stay held forever: start from scratch."""
    global _OWNER_LOCKS, _POOL_LOCK, _JOBS_READY, _ACTIVE_LOCK
    _OWNER_LOCKS = weakref.WeakKeyDictionary()
    _POOL_LOCK = threading.Lock()
    _JOBS_READY = threading.Condition(_POOL_LOCK)
    _POOL.update(threads=0, busy=0)
    _JOBS.clear()
    _ACTIVE_LOCK = threading.Lock()
    _ACTIVE.clear()
    _CANCELLED.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class BatchCancelled(Exception):
    """Raised inside a `solve_batch` worker whose batch was cancelled (never reaches users)."""


class _Job:
    __slots__ = ("call", "lock", "done", "cancelled", "result", "error")

    def __init__(self, call: Callable[[], Any], lock: threading.Lock):
        self.call, self.lock = call, lock
        self.done = threading.Event()
        self.cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.lock:
                if not self.cancelled:
                    self.result = self.call()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        finally:
            self.done.set()


def _worker() -> None:
    while True:
        with _POOL_LOCK:
            while not _JOBS:
                _JOBS_READY.wait()
            job = _JOBS.pop(0)
        try:
            job.run()
        finally:
            with _POOL_LOCK:
                _POOL["busy"] -= 1


def _submit(job: _Job) -> None:
    with _POOL_LOCK:
        if _POOL["busy"] >= _POOL["threads"]:
            threading.Thread(target=_worker, name="surco-solve", daemon=True).start()
            _POOL["threads"] += 1
        _POOL["busy"] += 1
        _JOBS.append(job)
        _JOBS_READY.notify()


def _owner_lock(owner: Any) -> threading.Lock:
    try:
        weakref.ref(owner)
    except TypeError:
        raise TypeError(f"blocking_call: owner must be a weak-referenceable object (the "
                        f"backend), got a {type(owner).__name__}") from None
    lock = _OWNER_LOCKS.get(owner)
    if lock is None:
        lock = _OWNER_LOCKS.setdefault(owner, threading.Lock())
    return lock


def blocking_call(call: Callable[[], T], stop: Callable[[], None], owner: Any) -> T:
    """Run ``call()`` (a solver call that blocks outside Python) so that Ctrl-C stops it.

    Args:
      call: the blocking call, e.g. ``lambda: model.optimize()``.
      stop: asks a running ``call`` to return as soon as possible; safe to call from another
        thread, before the call starts, and more than once (e.g. triggering a MathOpt
        ``SolveInterrupter``, ``SCIPinterruptSolve``, or setting a flag that a solver
        callback reads). After ``stop`` the call may return any result.
      owner: the object whose state ``call`` uses (the backend; any weak-referenceable
        object); calls on one owner never overlap, even when an interrupted call outlives
        its grace period.

    Returns:
      What ``call()`` returned.

    Raises:
      KeyboardInterrupt: a SIGINT arrived while waiting (main thread only); ``call`` has been
        stopped (or is still stopping after `INTERRUPT_GRACE` seconds).
      BatchCancelled: the `solve_batch` this worker thread serves was cancelled.
      TypeError: ``owner`` cannot be weakly referenced.
      Whatever ``call`` raised.
    """
    if threading.current_thread() is not threading.main_thread():
        return _call_in_batch(call, stop)
    job = _Job(call, _owner_lock(owner))
    try:
        _submit(job)
        job.done.wait()
    except BaseException:
        job.cancelled = True
        deadline = time.monotonic() + INTERRUPT_GRACE
        while not job.done.is_set() and time.monotonic() < deadline:
            stop()
            job.done.wait(_STOP_EVERY)
        raise
    if job.error is not None:
        raise job.error
    return job.result


def _call_in_batch(call: Callable[[], T], stop: Callable[[], None]) -> T:
    batch = getattr(_SCOPE, "batch", None)
    if batch is None:
        return call()
    with _ACTIVE_LOCK:
        if batch in _CANCELLED:
            raise BatchCancelled(f"batch {batch} was cancelled")
        _ACTIVE.setdefault(batch, set()).add(stop)
    try:
        return call()
    finally:
        with _ACTIVE_LOCK:
            running = _ACTIVE.get(batch)
            if running is not None:
                running.discard(stop)
                if not running:
                    del _ACTIVE[batch]


def new_batch() -> int:
    """A fresh batch id for `batch_scope` / `cancel_batch`."""
    return next(_BATCH_IDS)


class batch_scope:
    """Context manager run by a `solve_batch` worker: its blocking calls belong to ``batch``.

    Raises `BatchCancelled` on entry if the batch was already cancelled.
    """

    def __init__(self, batch: int | None):
        self.batch = batch

    def __enter__(self) -> "batch_scope":
        self.prev = getattr(_SCOPE, "batch", None)
        if self.batch is not None:
            with _ACTIVE_LOCK:
                if self.batch in _CANCELLED:
                    raise BatchCancelled(f"batch {self.batch} was cancelled")
            _SCOPE.batch = self.batch
        return self

    def __exit__(self, *exc) -> None:
        _SCOPE.batch = self.prev


def cancel_batch(batch: int) -> int:
    """Stop every blocking call of ``batch`` running in this process's threads and make
    the batch's workers raise `BatchCancelled` before their next call.

    Returns:
      How many calls of the batch were running here (0: nothing left to wait for).
    """
    with _ACTIVE_LOCK:
        _CANCELLED.add(batch)
        stops = list(_ACTIVE.get(batch, ()))
    for stop in stops:
        stop()
    return len(stops)


def gather(futures: list, batch: int) -> list:
    """Results of ``futures`` in order; on any exception (a Ctrl-C in the waiting thread, a
    worker's error) the rest of the batch is cancelled and its running calls are stopped
    (for up to `INTERRUPT_GRACE` seconds) before the exception propagates.

    Tasks already running in *other processes* (process pools, Dask, Ray) are cancelled if
    not started; one that started finishes its chunk there, unless that process gets the
    SIGINT itself (a terminal's Ctrl-C reaches the whole process group), in which case its
    solves stop as in this process.
    """
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        deadline = time.monotonic() + INTERRUPT_GRACE
        while cancel_batch(batch) and time.monotonic() < deadline:
            time.sleep(_STOP_EVERY)
        raise
