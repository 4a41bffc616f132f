"""Estimators by name (``get_estimator("blackbox", lam=20.0)``) and `solve_layer`, the
solver as a JAX operation with or without an estimator."""
from __future__ import annotations

import dataclasses
from concurrent.futures import Executor
from typing import ClassVar

import jax
import jax.numpy as jnp

from surco.estimators.base import Estimator, call_solver
from surco.solvers import Solver
from surco.estimators.blackbox import Blackbox
from surco.estimators.identity import Identity, NegIdentity
from surco.estimators.perturbed import Perturbed
from surco.estimators.quadratic import Quadratic, StraightThrough

#: name -> estimator class (each a frozen dataclass of its hyperparameters)
ESTIMATORS: dict[str, type[Estimator]] = {
    "blackbox": Blackbox,
    "perturbed": Perturbed,
    "identity": Identity,
    "neg_identity": NegIdentity,
    "straight_through": StraightThrough,
    "quadratic": Quadratic,
}

__all__ = ["ESTIMATORS", "get_estimator", "solve_layer"]


def get_estimator(name_or_estimator: str | Estimator, **hyperparams) -> Estimator:
    """An estimator by object or by name, with hyperparameters.

    Args:
      name_or_estimator: an `Estimator` (returned as is, or with ``hyperparams`` replaced)
        or a name from `ESTIMATORS`: ``"blackbox"``, ``"perturbed"``, ``"identity"``,
        ``"neg_identity"``, ``"straight_through"``, ``"quadratic"``.
      **hyperparams: the estimator's fields, e.g. ``lam=`` (blackbox), ``sigma=, n=, noise=``
        (perturbed), ``gamma=`` (quadratic, straight_through), ``projection=`` (identity, blackbox).

    Raises:
      ValueError: unknown name, unknown hyperparameter (naming the valid ones), or a bad
        value (from the estimator's own checks).
    """
    if isinstance(name_or_estimator, Estimator):
        cls, base = type(name_or_estimator), name_or_estimator
    elif isinstance(name_or_estimator, str):
        if name_or_estimator not in ESTIMATORS:
            raise ValueError(f"get_estimator: unknown estimator {name_or_estimator!r}; choose "
                             f"from {sorted(ESTIMATORS)}")
        cls, base = ESTIMATORS[name_or_estimator], None
    else:
        raise TypeError("get_estimator: expected an Estimator or a name, got "
                        f"{type(name_or_estimator).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(hyperparams) - fields)
    if unknown:
        raise ValueError(f"get_estimator: {cls.name!r} has no hyperparameter(s) {unknown}; "
                         f"valid: {sorted(fields) or 'none'}")
    if base is not None:
        return dataclasses.replace(base, **hyperparams) if hyperparams else base
    return cls(**hyperparams)


@dataclasses.dataclass(frozen=True)
class _Plain(Estimator):
    """The solver itself: its true derivative, zero almost everywhere."""

    name: ClassVar[str] = "none"

    def forward(self, solver, executor, c, key):
        x, status = call_solver(solver, executor, c)
        return x, status, None

    def backward(self, solver, executor, c, key, x, res, g):
        return jnp.zeros_like(c)


def solve_layer(solver: Solver, c: jax.Array, estimator: "Estimator | str | None" = None,
                key: jax.Array | None = None, *, executor: Executor | None = None,
                return_status: bool = False, **hyperparams):
    """Solve ``x = argmin_{x in Ω} c·x`` as a JAX operation.

    With ``estimator=None`` this is the bare solver layer: jit/vmap-able, and its derivative
    is the true one (zero). Otherwise it is ``get_estimator(estimator, **hyperparams)(solver,
    c, key, ...)``.

    Args, Returns, Raises: as `Estimator.__call__` (plus `get_estimator`'s errors).
    """
    est = _Plain() if estimator is None else get_estimator(estimator, **hyperparams)
    if estimator is None and hyperparams:
        raise ValueError(f"solve_layer: hyperparameters {sorted(hyperparams)} given without "
                         "an estimator")
    return est(solver, c, key, executor=executor, return_status=return_status)
