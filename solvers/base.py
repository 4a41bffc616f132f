"""The one solver interface shared by MILP backends and combinatorial oracles.

A solver is built once for a feasible set Ω and then answers ``solve(c)`` for many cost
vectors c, returning ``argmin_{x in Ω} c·x``. One solver object serves one thread at a time;
`solve_batch` is the way to solve in parallel.

Extension points (what a new backend or oracle implements; everything else is inherited):

* `Solver.solve_flat` (required): solve for one validated flat cost;
* `Solver.factory` (required): a picklable recipe that builds an equivalent solver, which
  is what `solve_batch` ships to its workers;
* `Solver.check_cost_values` (optional): extra requirements on c (e.g. c >= 0);
* ``spec`` (optional, a property or attribute): the feasible set as a `LinearSpec`, when
  it can be written as one (the quadratic relaxation and the MILP cross-checks use it);
* a solver call that blocks in C/C++ for long goes through
  `surco.solvers.blocking.blocking_call`, which makes Ctrl-C stop it (see that module).

The base class does input checking, timing, error raising and batching.

Batching (`solve_batch`) runs through any ``concurrent.futures.Executor``; how (worker model
caches, chunk sizes, which executor to use, `RayExecutor`) is in `surco.solvers.batching`.
"""

from __future__ import annotations

import abc
import contextlib
import time
from concurrent.futures import Executor
from typing import Any, Callable, Sequence

import numpy as np

from .batching import (RayExecutor, batch_error, chunk_sizes, clear_worker_cache, executor_width,
                       solve_chunk, worker_token)
from .blocking import (LIMIT_STOP_AFTER, BatchCancelled, DeadlineExceeded, deadline_scope, gather,
                       new_batch, settle)
from .result import Solution, SolverError, Status

__all__ = ["Solver", "TIME_LIMIT_SLACK", "RayExecutor", "chunk_sizes", "clear_worker_cache"]

#: seconds past ``time_limit`` by which `Solver.solve` returns (see `Solver.solve`): the
#: stop at ``LIMIT_STOP_AFTER``, the grace of ``LIMIT_GRACE`` and 0.15 s to read the result
TIME_LIMIT_SLACK = 0.5


class Solver(abc.ABC):
    """Minimise a linear cost over a fixed set Ω: ``x = argmin_{x in Ω} c·x``.

    Attributes:
      shape: shape of x (and of c).
      name: used in error messages.
    """

    shape: tuple[int, ...]
    name: str

    def __init__(self, shape: Sequence[int], name: str):
        self.shape = tuple(int(s) for s in shape)
        self.name = name
        self._token = worker_token(self)

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    # -- extension points -----------------------------------------------------------------
    @abc.abstractmethod
    def solve_flat(self, c: np.ndarray) -> tuple[np.ndarray | None, float, Status,
                                                 dict[str, Any]]:
        """Solve for one cost; the hook every solver implements (call `solve` instead).

        Args:
          c: flat float64 cost of length ``n``, already validated by `check_cost` (finite,
            right size, and accepted by `check_cost_values`).

        Returns:
          ``(x_flat, objective, status, stats)``: x as a flat array of length n (ignored,
          may be None, unless status is OPTIMAL or FEASIBLE), ``c·x`` (or the solver's
          objective), a `Status`, and a dict of extra statistics (``solve_time`` in
          seconds as reported by the solver; ``detail``, ``timeout``, ``time_limit`` to
          explain a failure, see `Solution.raise_for_status`).

        Raises:
          SolverError: the solver could not be run at all (rejected model or parameters).
            Failures of a solve that ran are returned as a status, not raised.
          KeyboardInterrupt: on Ctrl-C, when the blocking call goes through
            `surco.solvers.blocking.blocking_call`.
        """

    @abc.abstractmethod
    def factory(self) -> Callable[[], "Solver"]:
        """A picklable zero-argument callable that builds an equivalent fresh solver."""

    def check_cost_values(self, c: np.ndarray) -> None:
        """Extra requirements on a cost beyond shape and finiteness (default: none).

        Args:
          c: flat float64 cost, finite and of length ``n``.

        Raises:
          ValueError: c is not acceptable (e.g. Dijkstra needs c >= 0), naming the rule.
        """

    def set_bounds_flat(self, lb: np.ndarray, ub: np.ndarray) -> None:
        """Optional hook: replace the variable bounds of the built model, in place (call
        `fixed` instead). Backends over a `LinearSpec` implement it.

        Args:
          lb, ub: flat float64 arrays of length ``n`` (±inf allowed), ``lb <= ub``, already
            validated by `fixed`.

        Raises:
          NotImplementedError: this solver cannot change variable bounds.
        """
        raise NotImplementedError(f"{self.name}: {type(self).__name__} cannot change variable "
                                  "bounds (fixed() needs a MILP/LP backend built by make_solver)")

    @contextlib.contextmanager
    def fixed(self, mask, values):
        """Solve with some variables fixed: inside the block, every `solve` returns
        ``argmin c·x over {x in Ω : x[mask] = values[mask]}``; on leaving it (also by an
        exception or Ctrl-C) the model's bounds are those of Ω again, so the next solve is
        the same as a fresh model's. The model is edited in place (its bounds, not rebuilt),
        which is what large-neighbourhood search needs (`surco.lns`).

            with solver.fixed(mask, x_current):
                x = solver.solve(c).x          # only the entries outside mask move

        Args:
          mask: bool array shaped like x (or flat): the entries to fix.
          values: array shaped like x (or flat); only the entries under ``mask`` are read.
            They must lie within Ω's bounds and be integral where Ω's entry is integer (and
            the solver is not a relaxation); fixing entries that no point of Ω takes makes
            the solves infeasible (`InfeasibleError`), as for any empty set.

        Yields:
          The solver itself.

        Raises:
          TypeError: the solver has no `LinearSpec` (an oracle) or cannot change bounds.
          ValueError: mask or values of the wrong shape or dtype, a fixed value that is not
            finite, outside Ω's bounds or not integral where it must be.
          RuntimeError: ``fixed`` blocks nested on one solver.

        ``solve_batch`` inside the block solves in this process (workers build their models
        from the recipe, which has Ω's own bounds), whatever executor it is given.
        """
        from .spec import LinearSpec
        spec = getattr(self, "spec", None)
        if not isinstance(spec, LinearSpec):
            raise TypeError(f"{self.name}: fixed() needs a solver over a LinearSpec (a MILP/LP "
                            f"backend built by make_solver), not a {type(self).__name__}")
        if getattr(self, "_fixing", False):
            raise RuntimeError(f"{self.name}: fixed() blocks cannot be nested; leave the first "
                               "block (or fix the union of both masks in one)")
        m = np.asarray(mask)
        if m.dtype != bool or m.shape not in (self.shape, (self.n,)):
            raise ValueError(f"{self.name}: fixed: mask must be a bool array of shape "
                             f"{self.shape} (or ({self.n},)), got {m.dtype} {m.shape}")
        v = np.asarray(values, np.float64)
        if v.shape not in (self.shape, (self.n,)):
            raise ValueError(f"{self.name}: fixed: values must have shape {self.shape} (or "
                             f"({self.n},)), got {v.shape}")
        m, v = m.reshape(-1), v.reshape(-1)
        idx = np.flatnonzero(m)
        vals = v[idx]
        bad = ~np.isfinite(vals) | (vals < spec.lb[idx] - 1e-9) | (vals > spec.ub[idx] + 1e-9)
        integer = spec.integer[idx] & (not getattr(self, "relax", False))
        frac = integer & np.isfinite(vals) & (np.abs(vals - np.round(vals)) > 1e-6)
        if bad.any() or frac.any():
            i = int(idx[np.flatnonzero(bad | frac)[0]])
            why = "not integral" if frac[np.flatnonzero(bad | frac)[0]] else \
                f"outside Ω's bounds [{spec.lb[i]}, {spec.ub[i]}]"
            raise ValueError(f"{self.name}: fixed: value {v[i]} at flat index {i} is {why}")
        vals = np.where(integer, np.round(vals), vals)
        lb, ub = spec.lb.astype(np.float64), spec.ub.astype(np.float64)
        lb[idx] = ub[idx] = np.clip(vals, spec.lb[idx], spec.ub[idx])
        self._fixing = True
        try:
            try:
                for o in self._blocking_owners():   # no call abandoned at a time limit
                    settle(o)                        # may see the edit
                self.set_bounds_flat(lb, ub)
            except NotImplementedError as exc:
                raise TypeError(str(exc)) from None
            yield self
        finally:
            try:
                for o in self._blocking_owners():
                    settle(o)
                self.set_bounds_flat(spec.lb.astype(np.float64), spec.ub.astype(np.float64))
            except NotImplementedError:
                pass
            finally:
                self._fixing = False

    def _blocking_owners(self) -> list:
        """The owners of the blocking calls ``solve_flat`` makes (`blocking_call`): the
        solver, and for a wrapper that solves through another solver's ``solve_flat`` (kept
        in ``inner``), that one's. `solve` and `fixed` wait (`settle`) until none of them
        has a call still running in the background before the model is touched."""
        owners, s = [self], self.__dict__.get("inner")
        while isinstance(s, Solver) and s not in owners:
            owners.append(s)
            s = s.__dict__.get("inner")
        return owners

    # -- public -------------------------------------------------------------------------
    def check_cost(self, c) -> np.ndarray:
        """Validate one cost vector; return it flat as float64.

        Raises:
          ValueError: if c is not shaped like x (``shape`` or flat n), holds NaN/inf, or
            fails `check_cost_values`.
        """
        arr = np.asarray(c, dtype=np.float64)
        if arr.shape != self.shape and arr.shape != (self.n,):
            raise ValueError(f"{self.name}: cost c has shape {arr.shape}, expected {self.shape}"
                             + (f" or ({self.n},)" if len(self.shape) > 1 else ""))
        if not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
            raise ValueError(f"{self.name}: cost c contains NaN or inf (first at flat index {bad})")
        flat = arr.reshape(-1)
        self.check_cost_values(flat)
        return flat

    def solve(self, c, *, check: bool = True) -> Solution:
        """Return ``argmin_{x in Ω} c·x``.

        Args:
          c: cost, shaped like x or flat.
          check: if True (default), failures raise; if False they come back as a `Solution`
            with a failing ``status`` and an all-NaN ``x`` (what jitted code needs).

        Raises:
          ValueError: bad cost (wrong shape, NaN/inf).
          InfeasibleError, UnboundedError, SolverTimeout, SolverError: when ``check`` and the
            solver found no usable point (exactly one of them, raised here; ``check=False``
            never raises for a failed solve).
          KeyboardInterrupt: Ctrl-C during the solve (within about a second; see
            `surco.solvers.blocking`); the solver stays usable.

        Time limit: a solver with a ``time_limit`` attribute (seconds, or None; every
        `make_solver` backend has one) returns within ``time_limit + TIME_LIMIT_SLACK``
        (0.5 s) of the start of `solve`, on a machine that gives it a core: a blocking call
        still running ``LIMIT_STOP_AFTER`` (0.1 s) past the limit is stopped from outside,
        and one that has not returned ``LIMIT_GRACE`` (0.25 s) later is abandoned to
        finish in the background (`surco.solvers.blocking.deadline_scope`; the next solve
        waits for it, within its own limit). Whichever clock ended the solve, a limit that
        was hit is reported: status FEASIBLE with the best point found, or, without one,
        ERROR with ``stats["timeout"]`` (`SolverTimeout`), both with
        ``stats["limit"] == "time"``.
        """
        flat = self.check_cost(c)
        t0 = time.perf_counter()
        limit = getattr(self, "time_limit", None)
        at = None if limit is None else time.monotonic() + float(limit) + LIMIT_STOP_AFTER
        with deadline_scope(at) as scope:
            if all(settle(o, scope.remaining()) for o in self._blocking_owners()):
                try:
                    x, obj, status, stats = self.solve_flat(flat)
                except DeadlineExceeded as exc:
                    x, obj, status, stats = None, float("nan"), Status.ERROR, {"detail": str(exc)}
            else:
                scope._fire()
                x, obj, status, stats = None, float("nan"), Status.ERROR, {
                    "detail": "the previous solve, abandoned at its time limit, was still "
                              "running in the background"}
        stats = dict(stats)
        if scope.fired and status not in (Status.OPTIMAL, Status.INFEASIBLE, Status.UNBOUNDED):
            stats["limit"] = "time"
            if status == Status.ERROR and not scope.own:   # an enclosing run's deadline
                was = stats.get("detail")
                stats["detail"] = ("stopped at the deadline of the enclosing run "
                                   "(surco.solvers.blocking.deadline_scope)"
                                   + (f"; {was}" if was and was != "interrupted" else ""))
            elif status == Status.ERROR:
                if not stats.get("timeout") and stats.get("detail") in (None, "", "interrupted"):
                    stats["detail"] = ("stopped at the time limit (the solver had not stopped "
                                       "by its own clock)")
                stats.update(timeout=True, time_limit=limit)
        stats["wall_time"] = time.perf_counter() - t0
        stats.setdefault("solve_time", stats["wall_time"])
        if status in (Status.OPTIMAL, Status.FEASIBLE):
            x = np.asarray(x, dtype=np.float64).reshape(self.shape)
        else:
            x = np.full(self.shape, np.nan)
            obj = float("nan")
        sol = Solution(x=x, objective=float(obj), status=Status(status), stats=stats)
        if check:
            sol.raise_for_status(self.name)
        return sol

    def solve_batch(self, C, executor: Executor | None = None, *,
                    check: bool = True) -> list[Solution]:
        """Solve for every cost in ``C`` (shape ``(B, *shape)`` or ``(B, n)``).

        The result equals ``[self.solve(c) for c in C]``. With an executor, C is cut into
        contiguous chunks of decreasing size (`chunk_sizes`; one task per cost vector when
        the executor's width is unknown), which the workers take as they become free; each
        chunk is solved by that worker's own cached model.

        Which executor, per backend (measured in ``bench/solvers.py``; see this module's
        docstring for the numbers):

        * SCIP, HiGHS, CP-SAT, GLOP, PDLP, PySCIPOpt: ``ThreadPoolExecutor(k)``, k <= the
          free cores. They solve single-threaded and release the GIL while they solve;
          threads start and ship nothing. Processes only for sub-millisecond solves, where
          the Python glue (GIL-bound) dominates.
        * `ShortestPathOracle` (scipy's Dijkstra holds the GIL) and other GIL-holding
          oracles: ``ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("spawn"))``.
        * a cluster: ``dask.distributed.Client.get_executor()`` or `RayExecutor`.

        Two workers give about 2 x one worker's throughput only when two cores are free:
        on a loaded machine they share what the scheduler gives the session.

        Args:
          C: batch of costs.
          executor: None (sequential, in this process), or any ``concurrent.futures``
            executor (see above).
          check: as in `solve`.

        Raises:
          ValueError: C is not ``(B, *shape)`` / ``(B, n)`` or holds NaN/inf (checked here,
            before anything is sent to a worker).
          InfeasibleError, UnboundedError, SolverTimeout, SolverError: as in `solve`, for
            the first failed item (in order), when ``check``; a solver error raised by an
            item's solve, also without ``check``. The rest of the batch is cancelled. The
            message starts with ``item i of B: `` (i counted from 0), and the exception
            carries ``item`` (i) and ``partial``: a list of B entries, the `Solution` of every
            item that had finished and None for the others.
          KeyboardInterrupt: Ctrl-C while waiting; unstarted work is cancelled and the solves
            running in this process's threads are stopped (`surco.solvers.blocking.gather`).
        """
        C = np.asarray(C, dtype=np.float64)
        if C.ndim < 1 or C.shape[1:] not in (self.shape, (self.n,)):
            raise ValueError(f"{self.name}: batch of costs has shape {C.shape}, expected "
                             f"(B, {', '.join(map(str, self.shape))})")
        flat = np.stack([self.check_cost(c) for c in C]) if len(C) else C.reshape(0, self.n)
        B = len(flat)
        if executor is None or B <= 1 or getattr(self, "_fixing", False):
            out: list = []
            for i, c in enumerate(flat):
                try:
                    sol = self.solve(c, check=False)
                except SolverError as exc:
                    failed: Solution | BaseException | None = exc
                else:
                    out.append(sol)
                    failed = None if (sol.ok or not check) else sol
                if failed is not None:
                    raise batch_error(self.name, i, B, out[:i] + [None] * (B - i), failed)
            return out
        sizes = chunk_sizes(B, executor_width(executor))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        chunks = np.split(flat, starts[1:])
        factory = self.factory()
        batch = new_batch()
        futures = [executor.submit(solve_chunk, self._token, factory, ch, check, batch)
                   for ch in chunks]
        parts: list = [None] * len(futures)
        failure: list = []

        def each(j: int, part: list) -> None:
            parts[j] = part
            bad = [k for k, s in enumerate(part) if not isinstance(s, Solution)
                   or (check and not s.ok)]
            if bad:   # chunks done by now are kept in `partial`; gather cancels the rest
                failure.append((j, bad[0], [f.done() for f in futures]))
                raise BatchCancelled("an item failed")

        try:
            gather(futures, batch, each)
        except BatchCancelled:
            if not failure:
                raise
        if not failure:
            return [sol for part in parts for sol in part]
        j, k, done = failure[0]
        partial: list = [None] * B
        for jj, (f, start) in enumerate(zip(futures, starts)):
            part = parts[jj]
            if part is None and done[jj] and not f.cancelled() and f.exception() is None:
                part = f.result()
            for kk, sol in enumerate(part or []):
                if isinstance(sol, Solution) and not (jj == j and kk >= k):
                    partial[start + kk] = sol
        raise batch_error(self.name, int(starts[j]) + k, B, partial, parts[j][k])
