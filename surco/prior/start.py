"""SurCo-hybrid's start and its progress measure (Ferber et al., ICML 2023, Alg. 4).

Hybrid runs SurCo-zero from a learned cost. `hybrid_start` picks the better (by f) of the
prior's θ and the heuristic's (a residual prior's ``base``, or one given), so that hybrid
never starts worse than the heuristic SurCo-zero would start from; `steps_to_reach` reads
from a run's history how many steps it needed to reach a quality.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np

from surco._engine import build_solver
from surco.problem import Instance


def hybrid_start(prior: Any, instance: Instance,
                 heuristic: Callable[[Instance], Any] | None = None) -> tuple[np.ndarray, str]:
    """The initial θ of SurCo-hybrid: the prior's or the heuristic's, whichever gives the
    solver an answer of lower f (ties: the prior's).

    Args:
      prior: a `surco.prior.PriorModel`.
      instance: one instance.
      heuristic: ``instance -> θ`` (x's shape); default the prior's ``base`` (a residual
        prior), else only the prior's θ is used.

    Returns:
      ``(θ0, which)``, ``which`` being "prior" or "heuristic".

    Raises:
      ProblemError: a θ of the wrong shape or non-finite f; the solver's typed errors.
    """
    from surco.prior.model import base_theta
    th = np.asarray(prior.theta(instance), np.float64)
    heuristic = heuristic if heuristic is not None else prior.base
    if heuristic is None:
        return th, "prior"
    problem = prior.problem
    th_h = base_theta(heuristic, instance, th.shape, problem.name).astype(np.float64)
    C = np.stack([np.asarray(problem.to_cost(jnp.asarray(t, jnp.float32)), np.float64)
                  for t in (th, th_h)])
    solver = build_solver(problem, instance, prior.backend, prior.solver_options)
    X = [s.x for s in solver.solve_batch(C)]
    f = [float(problem.f(jnp.asarray(x, jnp.float32), instance)) for x in X]
    return (th, "prior") if f[0] <= f[1] else (th_h, "heuristic")


def steps_to_reach(best_f: Sequence[float], target: float, rtol: float = 1e-9) -> int | None:
    """The first step whose best-so-far f is ``<= target`` (within ``rtol`` of |target|),
    from a run's ``history["best_f"]``; None when the run never reached it.

    >>> steps_to_reach([5.0, 4.0, 3.0, 3.0], 3.5)
    2
    >>> steps_to_reach([5.0, 4.0], 3.0) is None
    True

    Raises:
      ValueError: ``target`` not finite.
    """
    if not math.isfinite(target):
        raise ValueError(f"steps_to_reach: target must be finite, got {target!r}")
    tol = rtol * abs(target)
    for t, v in enumerate(best_f):
        if v <= target + tol:
            return t
    return None
