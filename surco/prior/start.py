"""SurCo-hybrid's start and its progress measure (Ferber et al., ICML 2023, Alg. 4).

Hybrid runs SurCo-zero from a learned cost. `hybrid_start` picks the better (by f) of the
prior's θ and the heuristic's (a residual prior's ``base``, or one given), optionally with a
few perturbations of the prior's θ competing too, so that hybrid never starts worse than
the heuristic SurCo-zero would start from; `steps_to_reach` reads
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
                 heuristic: Callable[[Instance], Any] | None = None, *,
                 perturbations: int = 0, sigma: float = 0.1,
                 key: Any = 0) -> tuple[np.ndarray, str]:
    """The initial θ of SurCo-hybrid: the prior's or the heuristic's, whichever gives the
    solver an answer of lower f (ties: the prior's); optionally also a few perturbations of
    the prior's θ, as in robust prediction (`PriorModel.predict` with ``candidates``). All
    candidates are solved in one batched call.

    Args:
      prior: a `surco.prior.PriorModel`.
      instance: one instance.
      heuristic: ``instance -> θ`` (x's shape); default the prior's ``base`` (a residual
        prior), else only the prior's θ (and its perturbations) are used.
      perturbations: how many perturbed copies ``θ + sigma · rms(θ) · N(0, I)`` of the
        prior's θ compete too (an integer >= 0).
      sigma: relative size of the perturbations (a number > 0).
      key: PRNG key or int seed of the perturbations.

    Returns:
      ``(θ0, which)``, ``which`` being "prior", "heuristic" or "perturbed".

    Raises:
      ValueError: ``perturbations`` or ``sigma`` out of range.
      ProblemError: a θ of the wrong shape or non-finite f; the solver's typed errors.
    """
    from surco._engine import check_finite, resolve_key
    from surco.prior.model import base_theta, perturbed
    if isinstance(perturbations, bool) or not isinstance(perturbations, (int, np.integer)) \
            or perturbations < 0:
        raise ValueError(f"hybrid_start: perturbations must be an integer >= 0, got "
                         f"{perturbations!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number)) \
            or not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"hybrid_start: sigma must be a finite number > 0, got {sigma!r}")
    net, base = prior._theta_parts(instance)  # the base once, however costly
    th = np.asarray(net if base is None else net + base, np.float64)
    problem = prior.problem
    thetas, which = [th], ["prior"]
    if heuristic is not None or base is not None:
        thetas.append((base if heuristic is None
                       else base_theta(heuristic, instance, th.shape, problem.name)
                       ).astype(np.float64))
        which.append("heuristic")
    if perturbations:
        thetas.extend(perturbed(th, int(perturbations), float(sigma), resolve_key(key)))
        which.extend(["perturbed"] * int(perturbations))
    if len(thetas) == 1:
        return th, "prior"
    C = np.asarray(prior._to_cost_batch(jnp.asarray(np.stack(thetas), jnp.float32)),
                   np.float64)
    solver = build_solver(problem, instance, prior.backend, prior.solver_options)
    X = np.stack([s.x for s in solver.solve_batch(C)])
    f = np.asarray(prior._f_candidates(jnp.asarray(X, jnp.float32), instance))
    check_finite(problem, f, "at hybrid's candidate starts")
    i = int(np.argmin(f))  # the first of equal f: the prior's wins a tie
    return thetas[i], which[i]


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
