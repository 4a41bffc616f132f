"""Data profiles and performance profiles of a comparison's anytime traces.

* Data profile (Moré & Wild, "Benchmarking derivative-free optimization algorithms",
  SIAM J. Optim. 20(1), 2009): instance p counts as *solved* by method s at the first point
  x of its trace with ``f(x0) − f(x) ≥ (1 − τ)(f(x0) − f_L)``, f_L the best value any method
  found on p; t_{p,s} is the evaluations (or seconds) spent by then, inf if never. The data
  profile is ``d_s(κ) = |{p : t_{p,s} ≤ κ}| / |P|``, the fraction solved within κ. Here κ
  counts evaluations (not Moré–Wild's simplex gradients, κ/(n_p + 1): x is combinatorial).
* Performance profile (Dolan & Moré, "Benchmarking optimization software with performance
  profiles", Math. Program. 91, 2002): ``r_{p,s} = t_{p,s} / min_s t_{p,s}`` and
  ``ρ_s(τ) = |{p : r_{p,s} ≤ τ}| / |P|``.

f(x0), the common start of the test, is per instance the worst of the methods' first
evaluated values (Moré–Wild start every solver at one x0; here each method picks its own
first x, and the worst start keeps the test the same for all; where no method evaluated
anything, the worst returned value); pass ``f0`` to set it. A
trace's points are the meter's improvements and the run's end (the value it returned, after
all its evaluations), so a method that evaluates nothing (one greedy pass, a trained prior)
solves an instance at 0 evaluations if its answer passes the test. A failed run solves
nothing. In ratios ``0/0`` is 1 and ``t/0`` (t > 0) is inf.

Where "solved" has a meaning of its own, an absolute ``level`` per instance replaces the τ
test: solved at the first point with ``f(x) <= level`` (e.g. 0 for a photonic design whose
window loss is 0, i.e. that meets its spec: the data profile is then the success rate
against simulations).

    >>> import numpy as np, surco
    >>> b = surco.Budget()
    >>> runs = [surco.Run("a", 0, np.zeros(1), 0.0, 1.0, 10, "ok", None,
    ...                   [(1, .1, 10.0), (10, 1.0, 0.0)], b),
    ...         surco.Run("b", 0, np.zeros(1), 1.0, 1.0, 4, "ok", None,
    ...                   [(1, .1, 8.0), (4, .4, 1.0)], b)]
    >>> cmp = surco.Comparison("toy", runs, ["a", "b"], 1)
    >>> p = data_profile(cmp, tol=0.1, kappa=[4, 10])   # solved: f <= 0 + 0.1 (10 - 0) = 1
    >>> p.t["a"], p.t["b"], p.fractions["a"], p.fractions["b"]
    (array([10.]), array([4.]), array([0., 1.]), array([1., 1.]))
    >>> performance_profile(cmp, tol=0.1, taus=[1, 2.5]).fractions["a"]
    array([0., 1.])
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from surco.whichmethod import trace

__all__ = ["Profile", "solve_times", "data_profile", "performance_profile"]


@dataclasses.dataclass
class Profile:
    """A data or performance profile.

    Attributes:
      kind: "data" or "performance"; axis: "evaluations" or "seconds"; tol: τ of the test.
      x: the grid (κ for a data profile, the ratio τ for a performance profile).
      fractions: method -> fraction of instances at each grid point.
      t: method -> (instances,) evaluations or seconds to solve each instance (inf: never).
      f0, f_low: per instance, f(x0) and f_L of the convergence test.
      level: per instance, the absolute level that replaced the test (None: the τ test).
    """

    kind: str
    axis: str
    tol: float
    x: np.ndarray
    fractions: dict[str, np.ndarray]
    t: dict[str, np.ndarray]
    f0: np.ndarray
    f_low: np.ndarray
    level: np.ndarray | None = None

    def plot(self, path: str | Path | None = None, title: str = ""):
        """Step plot of the profile (SurCo-family methods thick). Writes ``path`` when given;
        returns the figure (needs matplotlib)."""
        from surco.plots import plot_profile
        return plot_profile(self, path, title)


def _points(run: Any, eval_cost: float | None, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of a run's trace: its improvements, then its end."""
    tr = trace(run)
    if axis == "evaluations":
        t, end = tr.evaluations, float(tr.end_evaluations)
    elif eval_cost is None:
        e0 = float(run.budget.eval_cost)
        t, end = tr.effective(e0)
    else:
        t, end = tr.effective(eval_cost)
    return np.append(t, end), np.append(tr.best, tr.final)


def solve_times(cmp: Any, tol: float = 1e-3, axis: str = "evaluations",
                eval_cost: float | None = None, f0: Sequence[float] | None = None,
                level: Sequence[float] | None = None
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """t_{p,s} of the module docstring for every method of ``cmp``.

    Args:
      cmp: a `surco.Comparison`.
      tol: τ in (0, 1).
      axis: "evaluations", or "seconds" (effective seconds: real + ``eval_cost`` ×
        evaluations; ``eval_cost`` None: as recorded, with each run's own eval_cost).
      f0: f(x0) per instance (default: the worst first evaluated value; see the module).
      level: per instance, an absolute level that counts as solved (``f <= level``),
        replacing the τ test (None: the τ test).

    Returns:
      ``(t, f0, f_low)``: method -> (instances,) times (inf: not solved or no run), and the
      per-instance f(x0) and f_L.

    Raises:
      ValueError: bad tol, axis, eval_cost or f0 (naming which).
    """
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"profiles: tol must lie in (0, 1), got {tol!r}")
    if axis not in ("evaluations", "seconds"):
        raise ValueError(f"profiles: axis must be 'evaluations' or 'seconds', got {axis!r}")
    if eval_cost is not None and not (isinstance(eval_cost, (int, float)) and
                                      math.isfinite(eval_cost) and eval_cost >= 0):
        raise ValueError(f"profiles: eval_cost must be a finite number >= 0 or None, got "
                         f"{eval_cost!r}")
    n = cmp.n_instances
    pts = {(r.method, r.instance): _points(r, eval_cost, axis) for r in cmp.runs
           if r.ok and math.isfinite(r.value)}
    f_low = np.full(n, math.inf)
    first = np.full(n, -math.inf)
    ends = np.full(n, -math.inf)     # f0 where no method evaluated anything: the worst answer
    for (_, i), (_, v) in pts.items():
        f_low[i] = min(f_low[i], float(v.min()))
        if len(v) > 1:
            first[i] = max(first[i], float(v[0]))
        ends[i] = max(ends[i], float(v[-1]))
    first = np.where(np.isfinite(first), first, ends)
    if f0 is not None:
        first = np.asarray(f0, np.float64).reshape(-1)
        if first.shape != (n,) or not np.all(np.isfinite(first)):
            raise ValueError(f"profiles: f0 must hold {n} finite values, one per instance, "
                             f"got {np.asarray(f0).tolist()!r}")
    if level is None:
        level = f_low + tol * (first - f_low)
    else:
        level = np.asarray(level, np.float64).reshape(-1)
        if level.shape != (n,) or np.isnan(level).any():
            raise ValueError(f"profiles: level must hold {n} numbers, one per instance, got "
                             f"{np.asarray(level).tolist()!r}")
    t = {}
    for m in cmp.methods:
        tm = np.full(n, math.inf)
        for i in range(n):
            if (m, i) not in pts or not math.isfinite(level[i]):
                continue
            ts, vs = pts[(m, i)]
            ok = np.nonzero(vs <= level[i])[0]
            if ok.size:
                tm[i] = float(ts[ok[0]])
        t[m] = tm
    return t, first, f_low


def data_profile(cmp: Any, tol: float = 1e-3, kappa: Sequence[float] | None = None,
                 axis: str = "evaluations", eval_cost: float | None = None,
                 f0: Sequence[float] | None = None,
                 level: Sequence[float] | None = None) -> Profile:
    """Moré–Wild data profile ``d_s(κ)`` (module docstring) on the grid ``kappa``
    (default: 0 up to the largest solve time, 100 points). Raises ValueError as
    `solve_times` (which also says what ``level`` does)."""
    t, first, low = solve_times(cmp, tol, axis, eval_cost, f0, level)
    if kappa is None:
        top = max((float(v[np.isfinite(v)].max()) for v in t.values() if np.isfinite(v).any()),
                  default=1.0)
        kappa = np.linspace(0.0, max(top, 1e-12), 100)
    k = np.asarray(kappa, np.float64)
    frac = {m: (v[:, None] <= k[None, :]).mean(axis=0) for m, v in t.items()}
    return Profile("data", axis, float(tol), k, frac, t, first, low, _level(level))


def performance_profile(cmp: Any, tol: float = 1e-3, taus: Sequence[float] | None = None,
                        axis: str = "evaluations", eval_cost: float | None = None,
                        f0: Sequence[float] | None = None,
                        level: Sequence[float] | None = None) -> Profile:
    """Dolan–Moré performance profile ``ρ_s(τ)`` (module docstring) on the ratio grid
    ``taus`` (default: 1 up to the largest finite ratio, log-spaced, 100 points). Raises
    ValueError as `solve_times` (which also says what ``level`` does)."""
    t, first, low = solve_times(cmp, tol, axis, eval_cost, f0, level)
    T = np.stack([t[m] for m in cmp.methods]) if t else np.zeros((0, cmp.n_instances))
    best = T.min(axis=0) if len(T) else np.full(cmp.n_instances, math.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        R = np.where(best > 0, T / np.where(best > 0, best, 1.0),
                     np.where(T == 0, 1.0, math.inf))
    R = np.where(np.isfinite(T), R, math.inf)
    if taus is None:
        top = float(R[np.isfinite(R)].max()) if np.isfinite(R).any() else 1.0
        taus = np.geomspace(1.0, max(top, 1.0 + 1e-9), 100)
    tau = np.asarray(taus, np.float64)
    frac = {m: (R[k][:, None] <= tau[None, :]).mean(axis=0) for k, m in enumerate(cmp.methods)}
    return Profile("performance", axis, float(tol), tau, frac, t, first, low, _level(level))


def _level(level: Sequence[float] | None) -> np.ndarray | None:
    return None if level is None else np.asarray(level, np.float64).reshape(-1)
