"""Guidance while SurCo runs: when the solver, not the learning, takes the time.

A SurCo step is one forward pass (f and its gradient), one or more solves of Ω for the
current cost, and the optimiser's update. When Ω is a hard MILP (0.1–2 s per solve), the
solves are nearly the whole step and a tuning run of a few hundred steps takes many
minutes; nothing in f or the estimator can make it faster. `check_solver_share` says so,
with what to do about it:

* a per-solve time limit (`DEFAULT_SOLVE_SECONDS`, the documented default for SurCo steps):
  the solver returns its best feasible x at the limit (status "feasible"), which is still
  a point of Ω, so a step stays valid;
* the LP relaxation of Ω (``make_solver(spec, relax=True)``, or an estimator that
  differentiates through the relaxation): one LP solve is usually orders of magnitude
  cheaper than the MILP;
* LANCER (`surco.lancer`, Zharmagambetov et al., NeurIPS 2023), which learns a model of
  f(argmin c) and so needs fewer solves and evaluations per unit of progress.

    >>> w = check_solver_share(0.9, 1.0, warn=False)
    >>> round(w.share, 2), w.category.__name__
    (0.9, 'SolverDominatesWarning')
    >>> check_solver_share(0.1, 1.0, warn=False) is None
    True
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

__all__ = ["check_solver_share", "SolverDominatesWarning", "SolverShare",
           "SOLVER_SHARE_THRESHOLD", "DEFAULT_SOLVE_SECONDS"]

#: Share of a SurCo step's time above which the solver is said to dominate.
SOLVER_SHARE_THRESHOLD = 0.8
#: The documented default per-solve time limit (seconds) for SurCo steps: long enough for
#: every solve of the project's families (sharding's generalised assignment: ms; routing's
#: Dijkstra and flow LP: ms; portfolio's support MILP: < 0.1 s), short enough that one
#: pathological solve cannot stall a run of hundreds of steps. At the limit the solver
#: returns its best feasible x (a point of Ω) and the step goes on.
DEFAULT_SOLVE_SECONDS = 5.0


class SolverDominatesWarning(UserWarning):
    """The solves of Ω take most of each SurCo step (see `check_solver_share`)."""


class SolverShare:
    """A `SolverDominatesWarning` to emit: the share of step time spent solving and the
    message with the advice.

    Attributes:
      share: solve seconds / step seconds (clipped to [0, 1]); solve_seconds,
      step_seconds: the totals it came from; message: the warning's text; category:
      `SolverDominatesWarning`.
    """

    category = SolverDominatesWarning

    def __init__(self, share: float, solve_seconds: float, step_seconds: float, message: str):
        self.share, self.solve_seconds, self.step_seconds = share, solve_seconds, step_seconds
        self.message = message

    def __repr__(self) -> str:
        return f"SolverShare(share={self.share:.3f}: {self.message[:60]!r}...)"

    def __str__(self) -> str:
        return self.message


def _total(v: float | Sequence[float] | np.ndarray, name: str) -> float:
    arr = np.asarray(v, np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"check_solver_share: {name} must be finite seconds >= 0 (a number or "
                         f"one per step), got {v!r}")
    return float(arr.sum())


def check_solver_share(solve_seconds: float | Sequence[float] | np.ndarray,
                       step_seconds: float | Sequence[float] | np.ndarray, *,
                       threshold: float = SOLVER_SHARE_THRESHOLD,
                       warn: bool = True) -> SolverShare | None:
    """Whether the solver takes more than ``threshold`` of SurCo's step time, and what to do.

    Args:
      solve_seconds: seconds spent in the solver, one number or one per step.
      step_seconds: seconds of the same steps in all (solve, f, gradient, update), one
        number or one per step (summed).
      threshold: the share in (0, 1) above which the solver dominates (default 0.8).
      warn: also emit the `SolverDominatesWarning` (``warnings.warn``).

    Returns:
      a `SolverShare` (the warning's share and message) when the solver's share exceeds
      ``threshold``, else None.

    Raises:
      ValueError: negative or non-finite seconds, step seconds that sum to 0, a threshold
        outside (0, 1) (each naming the argument).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 < threshold < 1:
        raise ValueError(f"check_solver_share: threshold must lie in (0, 1), got {threshold!r}")
    solve = _total(solve_seconds, "solve_seconds")
    step = _total(step_seconds, "step_seconds")
    if step <= 0:
        raise ValueError(f"check_solver_share: step_seconds must sum to > 0, got {step_seconds!r}")
    share = min(solve / step, 1.0)
    if not share > threshold or math.isnan(share):
        return None
    message = (
        f"the solver takes {100 * share:.0f} % of SurCo's step time ({solve:.3g} s of "
        f"{step:.3g} s): the solves of Ω, not the learning, set the speed. Give each solve a "
        f"time limit (the default for SurCo steps is {DEFAULT_SOLVE_SECONDS:g} s; at the limit "
        "the solver returns its best feasible x), differentiate through the LP relaxation "
        "(make_solver(spec, relax=True)), or use LANCER (surco.lancer), which learns a model "
        "of f(argmin c) and needs fewer solves.")
    out = SolverShare(share, solve, step, message)
    if warn:
        warnings.warn(message, SolverDominatesWarning, stacklevel=2)
    return out
