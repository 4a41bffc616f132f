"""One run of the comparison harness: `Run` (the one result type of every method) and
`run_one` (a method on one instance under a fresh meter), and `execute`, which runs a list
of them in this process or on any `concurrent.futures.Executor` and hands each finished run
back as it completes (to `surco.compare`, which stores it: `surco.store`)."""
from __future__ import annotations

import dataclasses
import math
import os
import socket
from concurrent.futures import Executor, as_completed
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from surco._engine import RunControl, controlled
from surco.budget import Budget, BudgetExhausted
from surco.family import Family, Method
from surco.outcome import StopReason, stop_reason
from surco.whichmethod import CUT_OFF_FRACTION

__all__ = ["Run", "run_one", "Job", "execute"]


@dataclasses.dataclass
class Run:
    """One method on one instance: the one result type of every method in the harness.

    Attributes:
      method: its name; instance: the instance's index in the comparison.
      x: the returned solution (None when the method failed without one).
      value: its true cost (``Family.evaluate``; nan when failed). Lower is better.
      seconds: time of the method's call on its meter's clock: wall seconds + the budget's
        ``eval_cost`` × evaluations. evaluations: distinct true-cost evaluations it made
        through its meter.
      status: how the run ended, for the harness: "ok" (the method returned its x),
        "failed" (``error`` says why: an exception, no solution, or x outside Ω), or the
        `surco.outcome.StopReason` that ended the method from outside it:
        ``StopReason.BUDGET`` (its budget ran out: x is the meter's best). "ok" and "failed"
        are outcomes of the harness's checks, not stop reasons, so they stay strings; a
        stop reason read from a file written with plain strings ("budget") becomes the
        member (`stop_reason`), and ``status == "budget"`` holds either way.
      error: the error message for failed runs.
      curve: anytime curve ``[(evaluations, seconds, best value), ...]`` from the meter.
      budget: the budget it ran under.
      wall_seconds: the real seconds of the call (None: not recorded; then seconds −
        eval_cost × evaluations).
      cut_off: whether its budget ended the run (`surco.whichmethod.trace`; None: not
        recorded).
      host, load_avg: the machine that ran it and its 1-minute load average at the end
        (None: not recorded), so that equal-time comparisons spread over a cluster can be
        checked for fairness.
      commit: the repository commit the run ran at (``git rev-parse HEAD`` of the process
        that ran the comparison; None: not recorded, or not in a git work tree).
    """

    method: str
    instance: int
    x: np.ndarray | None
    value: float
    seconds: float
    evaluations: int
    status: "str | StopReason"
    error: str | None
    curve: list
    budget: Budget
    wall_seconds: float | None = None
    cut_off: bool | None = None
    host: str | None = None
    load_avg: float | None = None
    commit: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            self.status = stop_reason(self.status)

    @property
    def ok(self) -> bool:
        """True when x is usable: the method returned it, or its budget stopped it."""
        return self.status in ("ok", StopReason.BUDGET)

    def __repr__(self) -> str:
        err = f", error={self.error[:60]!r}" if self.error else ""
        return (f"Run({self.method!r}, instance={self.instance}, value={self.value:.6g}, "
                f"seconds={self.seconds:.3g}, evaluations={self.evaluations}, "
                f"status={str(self.status)!r}{err})")




def run_one(family: Family, name: str, method: Method, i: int, inst: Any,
            budget: Budget) -> Run:
    """Run ``method`` on instance ``inst`` (index ``i``) of ``family`` under ``budget``: a
    fresh meter, the returned x checked against Ω, its true cost; the outcome as a `Run`
    (failures recorded, never raised; Ctrl-C propagates). Picklable arguments make it a job
    for any executor.

    Ctrl-C is recognised wherever it lands: the call runs under `surco._engine.controlled`,
    which marks the run interrupted when SIGINT arrives. A `KeyboardInterrupt` raised inside
    a JAX host callback (an FDFD simulation, a solve) reaches the caller as JAX's own error;
    with the mark set, that error, or a normal return, is turned back into
    `KeyboardInterrupt`, never recorded as a failed run."""
    batch = None
    if family.evaluate_batch is not None:
        def batch(X):
            return family.evaluate_batch(X, inst)
    meter = budget.start(lambda x: family.evaluate(x, inst), evaluate_batch=batch)
    x, status, error = None, "ok", None
    control = RunControl()
    try:
        with controlled(control):
            x = method(inst, meter)
    except BudgetExhausted:
        status, x = StopReason.BUDGET, meter.best_x
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # recorded, never aborts the comparison
        if control.reason == StopReason.INTERRUPTED:
            raise KeyboardInterrupt(f"{name} on instance {i}: interrupted") from exc
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    if control.reason == StopReason.INTERRUPTED:   # the method swallowed the Ctrl-C
        raise KeyboardInterrupt(f"{name} on instance {i}: interrupted")
    wall, seconds = meter.times()   # charged: wall + eval_cost × evaluations, one reading
    cut_off = (status == StopReason.BUDGET or meter.remaining_evaluations() <= 0 or
               (budget.seconds is not None and seconds >= CUT_OFF_FRACTION * budget.seconds))
    value = math.nan
    if status != "failed":
        if x is None:
            status, error = "failed", "returned no solution"
        else:
            x = np.asarray(x)
            try:
                bad = family.violations(x, inst)
            except Exception as exc:
                bad = [f"the feasibility check failed: {type(exc).__name__}: {exc}"]
            if bad:
                status, error = "failed", "solution outside Ω: " + "; ".join(bad[:3])
            else:
                cached = meter.cached(x)
                value = float(cached if cached is not None else family.evaluate(x, inst))
    return Run(name, i, x, value, seconds, meter.evaluations, status, error,
               list(meter.curve), budget, wall, cut_off, socket.gethostname(), _load())


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


@dataclasses.dataclass(frozen=True)
class Job:
    """One (method, instance) run to do: ``key`` is its `surco.store.RunStore` key (None
    without a store)."""

    name: str
    index: int
    instance: Any
    budget: Budget
    key: str | None = None


def execute(family: Family, table: Mapping[str, Method], jobs: Sequence[Job],
            done: Callable[[Job, Run], None], *, executor: Executor | None = None) -> None:
    """Run ``jobs`` (in order without an executor; submitted all at once to ``executor``
    otherwise: any `concurrent.futures.Executor`, e.g. a Dask client's ``get_executor()``
    or `surco.solvers.RayExecutor`) and call ``done(job, run)`` in this process as each
    finishes, so that a store written by ``done`` holds every finished run.

    On Ctrl-C (or any error raised by ``done``) the jobs not started are cancelled and the
    exception propagates; the runs already passed to ``done`` are kept by the caller.
    """
    if executor is None:
        for job in jobs:
            done(job, run_one(family, job.name, table[job.name], job.index, job.instance,
                              job.budget))
        return
    futures = {executor.submit(run_one, family, job.name, table[job.name], job.index,
                               job.instance, job.budget): job for job in jobs}
    try:
        for fut in as_completed(futures):
            done(futures[fut], fut.result())
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise

