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

Time limits: `Solver.solve` runs a solver that has a ``time_limit`` inside a
`deadline_scope` (its time limit plus `LIMIT_STOP_AFTER` from the start of the solve). A
blocking call made in that scope runs in a helper thread (from any thread) and is stopped
at the deadline, as on Ctrl-C: the solver's own clock does not cover every phase (HiGHS 1.12
neither reads its clock nor its interrupt callback during parts of presolve: a 600 × 600
assignment MIP with ``time_limit=2`` ran 6-30 s). A call that has not returned
`LIMIT_GRACE` seconds after its stop is abandoned: `DeadlineExceeded` is raised and the
call finishes in the background, holding its owner's lock; the owner's next ``solve``
waits for it (`settle`), within its own time limit. At exit the interpreter waits for such
calls (saying so on stderr after a second): one that returned during finalisation would
abort the process (CPython 3.11 ends the thread inside pybind11's C++ frames); the list of
abandoned calls and that wait are in `surco.solvers.abandoned`.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from typing import Any, Callable, TypeVar

from .abandoned import abandon, abandoned_running, on_abandon
from .result import SolverTimeout

__all__ = ["blocking_call", "deadline_scope", "DeadlineExceeded", "settle", "on_abandon",
           "new_batch", "batch_scope", "cancel_batch", "gather", "BatchCancelled",
           "INTERRUPT_GRACE", "LIMIT_STOP_AFTER", "LIMIT_GRACE"]

T = TypeVar("T")

#: seconds the caller waits, after an interrupt, for the stopped call to return before it
#: re-raises anyway (the call then finishes in the background, holding its owner's lock)
INTERRUPT_GRACE = 1.0
_STOP_EVERY = 0.02  # seconds between repeated stop() calls during the grace period
#: seconds past the end of a solver's time limit (counted from the start of `Solver.solve`)
#: at which a call still running is stopped from outside (`deadline_scope`)
LIMIT_STOP_AFTER = 0.1
#: seconds a call stopped at its deadline gets to return before it is abandoned
#: (`DeadlineExceeded`; it finishes in the background, holding its owner's lock)
LIMIT_GRACE = 0.25

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
    __slots__ = ("call", "lock", "done", "cancelled", "result", "error", "thread")

    def __init__(self, call: Callable[[], Any], lock: threading.Lock):
        self.call, self.lock = call, lock
        self.done = threading.Event()
        self.cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread: int | None = None

    def run(self) -> None:
        self.thread = threading.get_ident()
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
      DeadlineExceeded: inside a `deadline_scope`, the call had not returned `LIMIT_GRACE`
        seconds after its stop at the deadline (it goes on in the background), or the
        deadline had passed before it started.
      TypeError: ``owner`` cannot be weakly referenced.
      Whatever ``call`` raised.
    """
    scope = getattr(_SCOPE, "deadline", None)
    if scope is not None and scope.at is not None:   # see `deadline_scope`
        return _call_by_deadline(call, stop, owner, scope)
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
        if not job.done.is_set():
            abandon(job, stop)
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


class DeadlineExceeded(SolverTimeout):
    """Raised by `blocking_call` inside a `deadline_scope` whose call had not returned
    `LIMIT_GRACE` seconds after it was stopped at the deadline (or that began after the
    deadline): the call is left to finish in the background. `Solver.solve` turns it into a
    failed solve with ``stats["timeout"]`` (`SolverTimeout` when checked); raised further
    (by code that calls ``solve_flat`` itself), it is a `SolverTimeout`."""


class deadline_scope:
    """Context manager: every `blocking_call` this thread makes inside it must return by
    ``at`` (a ``time.monotonic()`` time; None: only the enclosing scopes' deadlines apply).

    At ``at`` a call still running is stopped (its ``stop``, every 20 ms); if it has not
    returned `LIMIT_GRACE` seconds later, `DeadlineExceeded` is raised and the call goes on
    in the background, holding its owner's lock. A call that would start after ``at`` is
    not started (`DeadlineExceeded`). Scopes nest: the earliest deadline applies (a run's
    deadline, e.g. SurCo-zero's ``time_limit``, also cuts a solve whose own limit is later).

    Attributes:
      at: the deadline (the earliest of this scope's and the enclosing ones').
      own: whether ``at`` is this scope's own deadline (False: an enclosing one's).
      fired: a call was stopped (or refused) because of the deadline (also set on the
        enclosing scope whose deadline it was).
      abandoned: a call was left running in the background.
    """

    def __init__(self, at: float | None):
        self.at = at
        self.own = at is not None
        self.fired = False
        self.abandoned = False

    def remaining(self) -> float | None:
        """Seconds left until ``at`` (0 once past; None: no deadline)."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def __enter__(self) -> "deadline_scope":
        self.prev = getattr(_SCOPE, "deadline", None)
        outer = None if self.prev is None else self.prev.at
        if outer is not None and (self.at is None or outer < self.at):
            self.at, self.own = outer, False  # an enclosing deadline that comes first
        _SCOPE.deadline = self
        return self

    def __exit__(self, *exc) -> None:
        _SCOPE.deadline = self.prev

    def _fire(self) -> None:
        """Mark this scope, and the enclosing ones whose deadline this is, as fired."""
        s = self
        while s is not None:
            if s.at is not None and s.at <= self.at:
                s.fired = True
            s = getattr(s, "prev", None)


def settle(owner: Any, timeout: float | None = None) -> bool:
    """Wait until no `blocking_call` of ``owner`` is running (one abandoned at a deadline or
    after Ctrl-C finishes in the background), so that the owner's model can be changed
    safely. Interruptible by Ctrl-C.

    Returns:
      True once none is running; False if ``timeout`` seconds (None: no limit) passed first.
    """
    if not abandoned_running():
        return True     # only an abandoned call can hold an owner's lock between calls
    lock = _owner_lock(owner)
    if lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
        lock.release()
        return True
    return False


def _call_by_deadline(call: Callable[[], T], stop: Callable[[], None], owner: Any,
                      scope: deadline_scope) -> T:
    """`blocking_call` inside a `deadline_scope`: in a helper thread, from any thread."""
    if time.monotonic() >= scope.at:
        scope._fire()
        raise DeadlineExceeded("the time limit had passed before the solver call started")
    batch = getattr(_SCOPE, "batch", None)
    if threading.current_thread() is threading.main_thread():
        batch = None
    if batch is not None:
        with _ACTIVE_LOCK:
            if batch in _CANCELLED:
                raise BatchCancelled(f"batch {batch} was cancelled")
            _ACTIVE.setdefault(batch, set()).add(stop)
    job = _Job(call, _owner_lock(owner))
    try:
        _submit(job)
        if not job.done.wait(max(0.0, scope.at - time.monotonic())):
            scope._fire()
            end = time.monotonic() + LIMIT_GRACE
            while not job.done.is_set() and time.monotonic() < end:
                stop()
                job.done.wait(_STOP_EVERY)
            if not job.done.is_set():
                job.cancelled = True
                scope.abandoned = True
                abandon(job, stop)
                raise DeadlineExceeded(
                    f"the solver did not stop within {LIMIT_GRACE} s of being stopped at the "
                    "time limit; it finishes in the background (the solver's next solve waits "
                    "for it)")
    except DeadlineExceeded:
        raise
    except BaseException:   # Ctrl-C (main thread): as `blocking_call`
        job.cancelled = True
        end = time.monotonic() + INTERRUPT_GRACE
        while not job.done.is_set() and time.monotonic() < end:
            stop()
            job.done.wait(_STOP_EVERY)
        if not job.done.is_set():
            abandon(job, stop)
        raise
    finally:
        if batch is not None:
            with _ACTIVE_LOCK:
                running = _ACTIVE.get(batch)
                if running is not None:
                    running.discard(stop)
                    if not running:
                        del _ACTIVE[batch]
    if job.error is not None:
        raise job.error
    return job.result


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


def gather(futures: list, batch: int,
           each: Callable[[int, Any], None] | None = None) -> list:
    """Results of ``futures`` in order; on any exception (a Ctrl-C in the waiting thread, a
    worker's error, or one raised by ``each(i, result)``, called on each result in order)
    the rest of the batch is cancelled and its running calls are stopped (for up to
    `INTERRUPT_GRACE` seconds) before the exception propagates.

    Tasks already running in *other processes* (process pools, Dask, Ray) are cancelled if
    not started; one that started finishes its chunk there, unless that process gets the
    SIGINT itself (a terminal's Ctrl-C reaches the whole process group), in which case its
    solves stop as in this process.
    """
    try:
        out = []
        for i, f in enumerate(futures):
            out.append(f.result())
            if each is not None:
                each(i, out[-1])
        return out
    except BaseException:
        for f in futures:
            f.cancel()
        deadline = time.monotonic() + INTERRUPT_GRACE
        while cancel_batch(batch) and time.monotonic() < deadline:
            time.sleep(_STOP_EVERY)
        raise
