"""Gradient estimators: differentiate ``x = argmin_{x in Ω} c·x`` with respect to c.

    >>> import jax, jax.numpy as jnp
    >>> from surco import estimators
    >>> from surco.solvers import AssignmentOracle
    >>> solver = AssignmentOracle(3, 3)
    >>> est = estimators.get_estimator("blackbox", lam=10.0)
    >>> c = jnp.array([[1., 2, 3], [2, 1, 3], [3, 2, 1]])
    >>> est(solver, c)
    Array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]], dtype=float32)

Estimators (by name in `ESTIMATORS`, each citing its paper): ``blackbox`` (Vlastelica et
al. 2020), ``perturbed`` (Berthet et al. 2020), ``identity`` / ``neg_identity`` (Sahoo et
al. 2023), ``straight_through`` and ``quadratic`` (Wilder et al. 2019). Supervised losses:
`fenchel_young_loss` (Berthet et al. 2020) and `spo_plus_loss` (Elmachtoub & Grigas 2022).
See `Estimator` for the interface and `surco.estimators.base` for an estimator written
outside the package (public hooks `Estimator.forward` / `Estimator.backward`, helpers
`call_solver`, `event_axes`, `check_positive`).
"""
from surco.estimators.base import (Estimator, call_solver, check_cost, check_positive, event_axes,
                                   raise_for_status)
from surco.estimators.blackbox import Blackbox
from surco.estimators.identity import Identity, NegIdentity, project_cost
from surco.estimators.losses import fenchel_young_loss, spo_plus_loss
from surco.estimators.perturbed import Perturbed
from surco.estimators.quadratic import Quadratic, StraightThrough, relaxation_spec
from surco.estimators.registry import ESTIMATORS, get_estimator, solve_layer

__all__ = ["Estimator", "solve_layer", "get_estimator", "ESTIMATORS", "raise_for_status",
           "check_cost", "call_solver", "event_axes", "check_positive", "Blackbox", "Perturbed", "Identity", "NegIdentity", "Quadratic",
           "StraightThrough", "project_cost", "relaxation_spec", "fenchel_young_loss",
           "spo_plus_loss"]
