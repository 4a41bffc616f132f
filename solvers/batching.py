"""How `Solver.solve_batch` runs: worker model caches, chunking, and `RayExecutor`.

Batching (`solve_batch`) runs through any ``concurrent.futures.Executor``. Each worker (a
thread or a process) builds its own copy of the model on first use and keeps it in a
per-worker cache, so repeated batches do not rebuild models. What travels to a worker is the
solver's *recipe* (`factory`, a picklable ``functools.partial``), never a live solver model,
which is why a Ray or Dask executor works unchanged: anything with
``submit(fn, *args) -> concurrent.futures.Future`` does.

Which executor (measured in ``bench/solvers.py``, sharding MILP 50 x 4, 2-core machine):

* Threads — ``ThreadPoolExecutor(k)`` — for every MILP/LP backend here (SCIP, HiGHS,
  CP-SAT, GLOP, PDLP through MathOpt or highspy, and PySCIPOpt). Each backend runs
  single-threaded (``threads=1``: process CPU time / wall time of a solve is <= 1.0), so
  k workers use k cores and never oversubscribe them. The solver call releases the GIL
  (MathOpt's pybind ``solve``, highspy's ``run``, PySCIPOpt's ``optimizeNogil``): a probe
  thread got to run during 90-100% of the solve calls it was timed against (0% for a call
  that holds the GIL), and the Python glue around a solve (objective update, reading x)
  is 3-11% of a 5-20 ms solve, which the GIL serialises. Threads cost nothing to start
  and ship nothing.
* Processes — ``ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("spawn"))`` —
  for oracles whose work holds the GIL (scipy's Dijkstra in `ShortestPathOracle`: the probe
  ran during 0-30% of its calls), for sub-millisecond solves where the Python glue
  dominates, or to isolate solver crashes. Use "spawn" (or "forkserver") once JAX is
  loaded: forking a process with JAX's threads running can deadlock. A spawned worker pays
  its imports once (about 5 s on the 2-core machine) and keeps one built model per solver
  in its cache; after that a task costs a round trip of about 0.6 ms (a ~10 kB recipe out,
  ~2 kB per solution back).
* Dask: ``client.get_executor()`` of a ``dask.distributed.Client`` (threads with
  ``Client(processes=False)``, worker processes with a ``LocalCluster`` or a real cluster).
  Nothing else is needed: each Dask worker thread builds and caches its own models.
* Ray: `RayExecutor` (the optional ``ray`` extra), a ``concurrent.futures.Executor`` over
  Ray tasks; Ray reuses its worker processes, so the models cached there are reused across
  batches.

k workers give up to k x the throughput of one only if k cores are free. On the 2-core
machine with no other load, 2 threads gave 1.94-2.14 x one thread on the sharding MILP for
SCIP, HiGHS, CP-SAT and PySCIPOpt (2 spawned processes: 1.91-2.06 x); with one other busy
process on the machine they gave 0.96-1.07 x, exactly what a GIL-free control workload got
(0.93-1.05 x): the kernel's autogroup scheduling gives each session one fair share of the
CPUs whatever its thread count, so two workers got one core. ``bench/solvers.py`` records
the control and the load average beside each ratio.

The width w of an executor (its ``_max_workers``, ``max_workers`` or ``_processes``) sets how
a batch is cut (`chunk_sizes`): contiguous chunks of decreasing size, each 1/(2w) of what is
left (guided self-scheduling, Polychronopoulos & Kuck, IEEE Trans. Computers 1987), queued
in order and taken by whichever worker is free. Large chunks first keep the tasks few
(about 2w ln(B/2w) + 2w of them); small ones last let the workers finish together although
MILP solve times vary 2-10x between costs (one chunk per worker left the second worker idle
for up to 10-25% of a batch in simulations of such spreads). An executor without a width
gets one task per cost vector. Worker caches hold at most `WORKER_CACHE_SIZE` models per process (least recently
used go first); models of solvers garbage-collected in this process are dropped with them.
"""
from __future__ import annotations

import collections
import functools
import itertools
import os
import threading
import weakref
from concurrent.futures import CancelledError, Executor, Future, InvalidStateError
from typing import Any, Callable

import numpy as np

from .blocking import BatchCancelled, batch_scope
from .result import Solution

__all__ = ["WORKER_CACHE_SIZE", "clear_worker_cache", "worker_token", "solve_chunk",
           "batch_error", "executor_width", "chunk_sizes", "RayExecutor"]

_TOKENS = itertools.count()
#: most models a worker process keeps for `solve_batch` (least recently used are dropped)
WORKER_CACHE_SIZE = 1024
_WORKER_CACHE: collections.OrderedDict[tuple, Any] = collections.OrderedDict()   # -> a Solver
# Reentrant: a solver's finalizer (`_drop_token`) may run in any thread at any allocation
# (the garbage collector), also in a thread that holds the lock; the cache is changed only
# by operations that tolerate entries vanishing under them.
_WORKER_LOCK = threading.RLock()


# Models taken out of the cache are released only after the lock is let go: releasing one
# runs its own finalizer (`_drop_token`), which takes the lock again.
def clear_worker_cache() -> None:
    """Drop the models that `solve_batch` workers in this process have built."""
    with _WORKER_LOCK:
        dropped = list(_WORKER_CACHE.values())
        _WORKER_CACHE.clear()
    del dropped


def worker_token(owner: object) -> tuple:
    """A new key for ``owner``'s models in worker caches, ``(serial, pid, id)``; when
    ``owner`` is garbage-collected, the models this process built for it are dropped."""
    token = (next(_TOKENS), os.getpid(), id(owner))
    weakref.finalize(owner, _drop_token, token).atexit = False
    return token


def _drop_token(token: tuple) -> None:
    """Forget the worker models of a solver that was garbage-collected (this process only)."""
    with _WORKER_LOCK:
        dropped = [_WORKER_CACHE.pop(k, None) for k in list(_WORKER_CACHE)
                   if k[:len(token)] == token]
    del dropped


def solve_chunk(token: tuple, factory: Callable[[], Any], C: np.ndarray,
                check: bool, batch: int | None = None) -> list[Solution]:
    """Solve the costs ``C`` with this worker's model of ``factory``, in order; stop after
    the first failed solve when ``check``. An exception raised by building the model or by
    a solve (not `BatchCancelled`) ends the list, returned as its last entry, so that the
    caller can name the item."""
    key = token + (os.getpid(), threading.get_ident())
    out: list = []
    try:
        with _WORKER_LOCK:
            solver = _WORKER_CACHE.get(key)
            if solver is not None:
                _WORKER_CACHE.move_to_end(key)
        if solver is None:
            solver = factory()
            dropped = []
            with _WORKER_LOCK:
                _WORKER_CACHE[key] = solver
                while len(_WORKER_CACHE) > WORKER_CACHE_SIZE:
                    dropped.append(_WORKER_CACHE.popitem(last=False))
            del dropped
        with batch_scope(batch):
            for c in C:
                sol = solver.solve(c, check=False)
                out.append(sol)
                if check and not sol.ok:
                    break          # the caller raises for it (`batch_error`)
    except BatchCancelled:
        pass   # the caller stopped waiting; what was solved is returned to nobody
    except Exception as exc:       # returned, not raised: the caller names the item
        out.append(exc)
    return out


def batch_error(name: str, i: int, size: int, partial: list,
                failed: "Solution | BaseException") -> BaseException:
    """The error `Solver.solve_batch` raises for item ``i`` of ``size``: the item's own typed
    error (or the exception its solve raised), its message prefixed ``item i of size: ``,
    with ``item`` and ``partial`` attributes."""
    if isinstance(failed, Solution):
        try:
            failed.raise_for_status(name)
        except Exception as exc:   # noqa: BLE001 - kept and raised by the caller
            err: BaseException = exc
        else:  # pragma: no cover - only failed solutions come here
            raise AssertionError("batch_error: the solution did not fail")
    else:
        err = failed
    head = f"item {i} of {size}: "
    first = err.args[0] if err.args else ""
    if not (isinstance(first, str) and first.startswith(head)):
        err.args = (head + str(first),) + tuple(err.args[1:])
    err.item, err.partial = i, partial
    return err


def executor_width(executor: Executor) -> int:
    for attr in ("_max_workers", "max_workers", "_processes"):
        w = getattr(executor, attr, None)
        if isinstance(w, int) and w > 0:
            return w
    return 0


def chunk_sizes(n: int, width: int) -> list[int]:
    """Sizes of the contiguous chunks `solve_batch` cuts ``n`` costs into for ``width``
    workers: each chunk is ``ceil(left / (2 * width))`` of the ``left`` costs not yet
    assigned (guided self-scheduling; see the module docstring); ``width`` 0 (unknown): one
    per cost.

    >>> chunk_sizes(19, 2)
    [5, 4, 3, 2, 2, 1, 1, 1]
    """
    if width <= 0:
        return [1] * n
    sizes, left = [], n
    while left:
        k = -(-left // (2 * width))
        sizes.append(k)
        left -= k
    return sizes


def _ray_call(fn: Callable[..., Any], *args: Any) -> Any:
    """The one Ray task `RayExecutor` runs: ``fn(*args)`` in a Ray worker process."""
    return fn(*args)


class _RayFuture(Future):
    """A ``concurrent.futures.Future`` of one Ray task; ``cancel`` also cancels the task."""

    def __init__(self, ref: Any, ray: Any):
        super().__init__()
        self._ref, self._ray = ref, ray
        ref.future().add_done_callback(self._copy)   # called from one of Ray's threads

    def _copy(self, inner: Future) -> None:
        try:
            exc = inner.exception()
            if exc is None:
                self.set_result(inner.result())
            else:
                self.set_exception(exc)
        except (CancelledError, InvalidStateError):
            pass   # this future was cancelled meanwhile: nobody waits for the result

    def cancel(self) -> bool:
        if self.done():
            return False
        # a queued task never starts; a running one gets a KeyboardInterrupt at its next
        # Python step (in `solve_batch`: after its current solve), its worker is kept
        self._ray.cancel(self._ref)
        return super().cancel()


class RayExecutor(Executor):
    """A ``concurrent.futures.Executor`` that runs each task as a Ray task, for
    `Solver.solve_batch` (and everything that takes an executor) on a Ray cluster.

    Each task reserves ``num_cpus`` CPUs; Ray keeps its worker processes, so the solver
    models that `solve_batch` caches in them are reused by later batches. Ray must be
    started (``ray.init(...)``) or is started by Ray itself with its defaults on the first
    task. ``cancel()`` of a returned future cancels the Ray task (`solve_batch` does so on
    Ctrl-C or on a failed chunk): a queued task never runs, a running chunk stops after its
    current solve, and the worker process (with its cached models) is kept.

    Args:
      max_workers: how many tasks may run at once, which sets how `solve_batch` cuts a
        batch (`chunk_sizes`); None: the CPUs of the Ray cluster divided by ``num_cpus``
        (starts Ray if it is not running).
      num_cpus: CPUs reserved per task (1: the solvers here run single-threaded).

    Raises:
      ImportError: ray is not installed (``pip install "surco[ray]"``).
      ValueError: ``max_workers`` is not a positive int or None, or ``num_cpus`` is not
        positive.
    """

    def __init__(self, max_workers: int | None = None, *, num_cpus: float = 1):
        try:
            import ray
        except ImportError as exc:
            raise ImportError('RayExecutor needs ray, the optional "ray" extra: '
                              'pip install "surco[ray]"') from exc
        if not (isinstance(num_cpus, (int, float)) and num_cpus > 0):
            raise ValueError(f"RayExecutor: num_cpus must be a positive number, got {num_cpus!r}")
        if max_workers is None:
            if not ray.is_initialized():
                ray.init()
            max_workers = max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus))
        if not (isinstance(max_workers, int) and max_workers > 0):
            raise ValueError("RayExecutor: max_workers must be a positive int or None, got "
                             f"{max_workers!r}")
        self._ray = ray
        self._max_workers = max_workers
        self._task = ray.remote(num_cpus=num_cpus, max_retries=0)(_ray_call)
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` as a Ray task; its future (see the class doc).

        Raises:
          RuntimeError: after ``shutdown``.
        """
        if self._shutdown:
            raise RuntimeError("RayExecutor: cannot submit after shutdown")
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return _RayFuture(self._task.remote(fn, *args), self._ray)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new tasks. Tasks already submitted run to the end whatever ``wait`` and
        ``cancel_futures`` say (cancel their futures to stop them); the Ray cluster stays
        up (``ray.shutdown()`` stops it)."""
        self._shutdown = True

