"""SurCo-zero's selection: the best x per instance (by f or by ``problem.evaluate``), the
stopping rules on it (patience, target), the history of every step, the checks that turn a
step's flags into one typed error, and the `ZeroResult` records (Ferber et al., ICML 2023,
Alg. 1: every iterate is feasible, the best by f is kept).

One `Selection` serves both backends: the host loop feeds it each step as it completes, the
compiled loop replays the steps a chunk recorded, so both keep the same best x, f and
history for the same trajectory.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

import numpy as np

from surco._engine import check_finite, is_budget_exhausted
from surco.budget import plan_key
from surco.outcome import StopReason
from surco.problem import Instance, Problem, ProblemError
from surco.results import ZeroResult
from surco.solvers import Solution, Status

__all__ = ["Selection", "NoProgressWarning", "no_progress_message", "check_step",
           "attach", "failed_results"]

_HISTORY = ("f", "best_f", "solver_calls", "seconds", "solver_seconds")


class NoProgressWarning(UserWarning):
    """SurCo-zero's x has not changed since its first step: the estimator's gradient does
    not move the cost across a single boundary of the solver's answer."""


def no_progress_message(label: str, est, stuck: int, B: int, n: int, default_opt: bool,
                        lr: float) -> str:
    """The text of `NoProgressWarning`."""
    which = "" if B == 1 else f" on {stuck} of {B} instances"
    opt = f" (the default optimiser for {est.name!r} with lr={lr:g})" if default_opt else ""
    return (f"{label}: x has not changed in the first {n} steps{which} with estimator "
            f"{est.name!r}{opt}: its gradient does not move the surrogate cost across a "
            f"single boundary of the solver's answer, so the run only re-evaluates the first "
            f"x. Try {est.no_progress_advice}. (no_progress_steps=None silences this.)")


def attach(exc: BaseException, partial) -> BaseException:
    """``exc`` with ``.partial`` set (what the run had found; None before its first step)."""
    exc.partial = partial
    return exc


class Selection:
    """The per-step bookkeeping of one run over B instances (see the module docstring)."""

    def __init__(self, problem: Problem, instances: Sequence[Instance], select: str,
                 patience: int | None, target: float | None):
        B = len(instances)
        self.problem, self.instances, self.select = problem, list(instances), select
        self.patience, self.target = patience, target
        self.best_f = np.full(B, np.inf)
        self.best_sel = np.full(B, np.inf)
        self.best: list = [None] * B
        self.stall = np.zeros(B, int)
        self.hist = {k: [[] for _ in range(B)] for k in _HISTORY}
        self.evaluated: list[dict[bytes, float]] = [{} for _ in range(B)]
        self.x_first: list = [None] * B
        self.moved = np.zeros(B, bool)
        self.t = 0

    def step(self, fv: np.ndarray, x: np.ndarray, c: np.ndarray, theta: np.ndarray,
             seconds: float, calls: int, solver_seconds: np.ndarray | None = None
             ) -> StopReason | None:
        """Record one step (f, x, c, θ per instance; the run's seconds and solver calls so
        far; each instance's solver seconds, None: not measured) and return the stop reason
        it meets (patience, target) or None. With ``select="evaluate"`` each new x is
        evaluated once (a `BudgetExhausted` propagates, the step unrecorded)."""
        B, t = len(self.instances), self.t
        scores = fv.copy()
        if self.select == "evaluate":
            for b in range(B):
                h = plan_key(x[b])
                if h not in self.evaluated[b]:
                    self.evaluated[b][h] = float(self.problem.evaluate(x[b], self.instances[b]))
                scores[b] = self.evaluated[b][h]
        for b in range(B):
            if scores[b] < self.best_sel[b]:
                self.best_sel[b], self.best_f[b] = scores[b], fv[b]
                self.best[b] = (x[b].copy(), c[b].copy(), theta[b].copy(), t)
                self.stall[b] = 0
            else:
                self.stall[b] += 1
            if self.x_first[b] is None:
                self.x_first[b] = x[b].copy()
            elif not self.moved[b] and not np.array_equal(x[b], self.x_first[b]):
                self.moved[b] = True
            self.hist["f"][b].append(float(fv[b]))
            self.hist["best_f"][b].append(float(self.best_f[b]))
            self.hist["solver_calls"][b].append(calls)
            self.hist["seconds"][b].append(seconds)
            self.hist["solver_seconds"][b].append(
                math.nan if solver_seconds is None else float(solver_seconds[b]))
        self.t += 1
        if self.patience is not None and np.all(self.stall >= self.patience):
            return StopReason.PATIENCE
        if self.target is not None and np.all(self.best_f <= self.target):
            return StopReason.TARGET
        return None

    def results(self, estimator: str, seconds: float, stopped: StopReason, *, final: bool,
                solver_calls: int, solver_seconds: Sequence[float] | None
                ) -> list[ZeroResult] | None:
        """One `ZeroResult` per instance (None before the first step). With ``final`` the
        best x's true cost is read (``problem.evaluate``, once per distinct x; a budget that
        ran out leaves it None)."""
        if any(b is None for b in self.best):
            return None
        B = len(self.instances)
        done = min(len(v) for v in self.hist["best_f"])  # equal unless Ctrl-C cut an update
        out = []
        for b in range(B):
            x_b, c_b, th_b, t_b = self.best[b]
            true = self.evaluated[b].get(plan_key(x_b))
            if true is None and final and self.problem.evaluate is not None:
                try:
                    true = float(self.problem.evaluate(x_b, self.instances[b]))
                except Exception as exc:  # the budget ran out: the result has no true cost
                    if not is_budget_exhausted(exc):
                        raise
            out.append(ZeroResult(
                x=x_b, f=float(self.best_f[b]), true_cost=true, c=c_b, theta=th_b,
                history={k: list(v[b][:done]) for k, v in self.hist.items()},
                best_step=int(t_b), seconds=seconds / B,
                solver_seconds=math.nan if solver_seconds is None else float(solver_seconds[b]),
                solver_calls=int(solver_calls), problem=self.problem.name, estimator=estimator,
                stopped=stopped))
        return out


def failed_results(problem: Problem, estimator: str, n: int, seconds: float,
                   exc: BaseException) -> list[ZeroResult]:
    """The results of a run that failed before its first step (``throw=False``): no x,
    ``stopped == StopReason.ERROR`` and the exception in ``error``."""
    return [ZeroResult(x=None, f=math.nan, true_cost=None, c=None, theta=None,
                       history={k: [] for k in _HISTORY}, best_step=-1, seconds=seconds / n,
                       solver_seconds=math.nan, solver_calls=0, problem=problem.name,
                       estimator=estimator, stopped=StopReason.ERROR, error=exc)
            for _ in range(n)]


def check_step(problem: Problem, est, flags: dict[str, Any], t: int, B: int,
               fail: Callable[[BaseException], BaseException], *, solver_name: Callable[[int], str],
               failure: dict | None = None) -> None:
    """Raise the first problem of step ``t``, once and typed (through ``fail``, which
    attaches the partial result): a failed solve, a non-finite cost, a non-finite objective
    value, a non-finite gradient of the objective, a non-finite estimator gradient.

    Args:
      flags: per-instance arrays, each optional: ``status`` (solver codes), ``c_ok``,
        ``f`` (objective values), ``gx_ok``, ``g_ok`` and ``gx`` (df/dx, to name the entry).
      solver_name: the solver's name for instance b.
      failure: the stats of the first failed solve (a host solver's `RunControl.failure`),
        or None.
    """
    def where(b: int) -> str:
        return f"Problem {problem.name!r}, step {t}" + (f", instance {b}" if B > 1 else "")

    def solver_failed(b: int, code: int, extra: str = "") -> None:
        stats = dict(failure or {})
        info = {k: stats[k] for k in ("timeout", "time_limit") if k in stats}
        info["detail"] = f"{where(b)}{extra}"
        try:
            Solution(x=np.zeros(0), objective=math.nan, status=Status(code),
                     stats=info).raise_for_status(solver_name(b))
        except Exception as exc:
            raise fail(exc) from None

    def first_bad(ok) -> int | None:
        if ok is None or np.all(ok):
            return None
        return int(np.flatnonzero(~np.asarray(ok))[0])

    if flags.get("status") is not None:
        status = np.atleast_1d(flags["status"])
        bad = np.flatnonzero(status > Status.FEASIBLE)
        if bad.size:
            n_bad = f"; {bad.size} of {status.size} instances failed" if status.size > 1 else ""
            solver_failed(int(bad[0]), int(status[bad[0]]), n_bad)
    b = first_bad(flags.get("c_ok"))
    if b is not None:
        raise fail(ProblemError(
            f"{where(b)}: the surrogate cost c = cost_transform(θ) is not finite; "
            "check the problem's cost_transform (and lr: θ may have diverged)")) from None
    if flags.get("f") is not None:
        try:
            check_finite(problem, np.asarray(flags["f"], np.float64), f"at step {t}")
        except ProblemError as exc:
            raise fail(exc) from None
    b = first_bad(flags.get("gx_ok"))
    if b is not None:
        entry = ""
        if flags.get("gx") is not None:
            g = np.asarray(flags["gx"][b]).reshape(-1)
            i = int(np.flatnonzero(~np.isfinite(g))[0])
            entry = f" ({g[i]} at flat index {i} of x)"
        raise fail(ProblemError(
            f"{where(b)}: the gradient of the objective with respect to x is not finite"
            f"{entry} at the solver's answer x, although f(x) is; "
            "the estimator needs a finite df/dx. Typical causes: sqrt, log or a division at 0 "
            "in f (e.g. jnp.sqrt(x) at x = 0: use jnp.sqrt(x + eps))")) from None
    b = first_bad(flags.get("g_ok"))
    if b is not None:
        if failure is not None:  # a solve of the backward pass failed
            m = re.match(r"member (\d+) ", failure.get("detail", ""))
            solver_failed(int(m.group(1)) if m else b, failure["status"],
                          " (a solve of the backward pass)")
        raise fail(ProblemError(
            f"{where(b)}: the gradient from estimator {est.name!r} (dL/dθ) is not finite "
            "although df/dx is; check the estimator's hyperparameters and the problem's "
            "cost_transform")) from None
