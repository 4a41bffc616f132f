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

Each estimator cites its paper; see `Estimator` for the interface.
"""
from surco.estimators.base import Estimator, raise_for_status, solve_layer
from surco.estimators.blackbox import Blackbox
from surco.estimators.identity import Identity, NegIdentity, project_cost
from surco.estimators.perturbed import Perturbed
from surco.estimators.registry import ESTIMATORS, get_estimator

__all__ = ["Estimator", "solve_layer", "get_estimator", "ESTIMATORS", "raise_for_status",
           "Blackbox", "Perturbed", "Identity", "NegIdentity", "project_cost"]
